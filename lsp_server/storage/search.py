"""Search over chat titles and messages: FTS5 when SQLite has it, LIKE otherwise.

Both back ends find, per chat, how well its title matched and its best message; one
builder (:func:`_hits`) then ranks the chats, fetches snippets and highlights for the
chosen ones only, and makes the :class:`~lsp_server.storage.records.SearchHit` records.
Words match whole tokens with FTS5 (case- and accent-insensitive) and substrings with
LIKE. Matches are wrapped in « » (:data:`~lsp_server.storage.records.SNIPPET_OPEN`).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lsp_server.core.errors import InvalidParams
from lsp_server.storage.db import FTS_TABLES
from lsp_server.storage.records import (
    NO_FOLDER,
    SNIPPET_CLOSE,
    SNIPPET_ELLIPSIS,
    SNIPPET_OPEN,
    SearchHit,
)
from lsp_server.storage.rows import opt_str

MAX_SEARCH_TERMS = 16
TITLE_BOOST = 2.0
RANK_WINDOW = 5000
"""Only the newest this many FTS matches are ranked (bm25 costs a lookup per row)."""

_WORD = re.compile(r"\w+")


def search_terms(query: str) -> list[str]:
    """Split a search query into words (the FTS tokenizer's notion, roughly)."""
    if not isinstance(query, str):
        raise InvalidParams("The search query must be a string.")
    return _WORD.findall(query)[:MAX_SEARCH_TERMS]


def _fts_match(terms: Sequence[str]) -> str:
    """Build an FTS5 MATCH expression: every term required, each quoted as a phrase."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _term_regex(terms: Sequence[str]) -> re.Pattern[str]:
    alternatives = sorted({re.escape(t) for t in terms}, key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE)


def highlight(text: str, terms: Sequence[str]) -> str:
    """Wrap every case-insensitive occurrence of the terms in « and »."""
    if not terms:
        return text
    return _term_regex(terms).sub(lambda m: f"{SNIPPET_OPEN}{m.group(0)}{SNIPPET_CLOSE}", text)


def make_snippet(text: str, terms: Sequence[str], width: int = 120) -> str:
    """Return about ``width`` characters around the first match, matches marked with « »."""
    flat = " ".join(text.split())
    match = _term_regex(terms).search(flat) if terms else None
    start = 0
    if match is not None:
        start = max(0, match.start() - width // 3)
        space = flat.rfind(" ", 0, start + 1)
        if start > 0 and space > 0 and match.start() - space < width // 2:
            start = space + 1
    end = min(len(flat), start + width)
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        if space > start + width // 2:
            end = space
    piece = highlight(flat[start:end], terms)
    return (
        (SNIPPET_ELLIPSIS if start > 0 else "")
        + piece
        + (SNIPPET_ELLIPSIS if end < len(flat) else "")
    )


def search(
    c: sqlite3.Connection,
    workspace: str,
    terms: list[str],
    *,
    limit: int,
    folder_id: str | None,
    fts: bool,
) -> list[SearchHit]:
    """Find chats (not trashed) whose title or messages contain every term, best first."""
    if fts:
        return _search_fts(c, workspace, terms, limit, folder_id)
    return _search_like(c, workspace, terms, limit, folder_id)


# -- one builder of hits ----------------------------------------------------------------


@dataclass(slots=True)
class _BestMessage:
    """A chat's best-matching message as a back end found it."""

    score: float
    message_id: str
    role: str


Texts = Callable[[list[str]], dict[str, str]]
"""Given chat ids, return a text per chat id (snippets or title highlights)."""


def _hits(
    c: sqlite3.Connection,
    workspace: str,
    titles: dict[str, float],
    messages: dict[str, _BestMessage],
    limit: int,
    snippets: Texts,
    highlights: Texts,
) -> list[SearchHit]:
    """Rank chats by their best score (newest first on ties) and build the top hits.

    ``titles`` maps chats whose title matched to the title's score; ``snippets`` and
    ``highlights`` are asked only for the chosen chats.
    """
    scores = dict(titles)
    for chat_id, best in messages.items():
        scores[chat_id] = max(scores.get(chat_id, best.score), best.score)
    if not scores:
        return []
    info = _chat_brief(c, list(scores))
    ranked = sorted(scores.items(), key=lambda kv: (kv[1], info[kv[0]][1]), reverse=True)
    chosen = [chat_id for chat_id, _ in ranked[:limit]]
    snippet_of = snippets([cid for cid in chosen if cid in messages])
    highlight_of = highlights([cid for cid in chosen if cid in titles])
    hits: list[SearchHit] = []
    for chat_id in chosen:
        title, updated, folder = info[chat_id]
        msg = messages.get(chat_id)
        hits.append(
            SearchHit(
                chat_id=chat_id,
                chat_title=title,
                title_highlight=highlight_of.get(chat_id),
                message_id=msg.message_id if msg is not None else None,
                role=msg.role if msg is not None else None,
                snippet=snippet_of.get(chat_id) if msg is not None else None,
                score=scores[chat_id],
                updated_at=updated,
                folder_id=folder,
                workspace_folder=workspace,
                matched_in=(["title"] if chat_id in titles else [])
                + (["message"] if msg is not None else []),
            )
        )
    return hits


def _chat_brief(
    c: sqlite3.Connection, chat_ids: Sequence[str]
) -> dict[str, tuple[str, int, str | None]]:
    marks = ",".join("?" for _ in chat_ids)
    return {
        str(r[0]): (str(r[1]), int(r[2]), opt_str(r[3]))
        for r in c.execute(
            f"SELECT id, title, updated, folder_id FROM chats WHERE id IN ({marks})",
            tuple(chat_ids),
        )
    }


def _folder_clause(folder_id: str | None) -> tuple[str, list[Any]]:
    if folder_id is None:
        return "", []
    if folder_id == NO_FOLDER:
        return " AND c.folder_id IS NULL", []
    return " AND c.folder_id = ?", [folder_id]


# -- FTS5 -------------------------------------------------------------------------------


def _ranked(
    c: sqlite3.Connection, table: str, match: str, offset: int, count: int
) -> list[tuple[int, float]]:
    """Return (rowid, bm25) pairs ``offset..offset+count`` of the newest matches, best first.

    Only the newest :data:`RANK_WINDOW` matches are ranked (bm25 costs a lookup per row).
    """
    if table not in FTS_TABLES:  # pragma: no cover - programming error
        raise ValueError(table)
    rows = c.execute(
        f"SELECT rowid, score FROM (SELECT rowid, bm25({table}) AS score FROM {table} "
        f"WHERE {table} MATCH ? ORDER BY rowid DESC LIMIT ?) ORDER BY score LIMIT ? OFFSET ?",
        (match, RANK_WINDOW, count, offset),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def _best_per_chat(
    c: sqlite3.Connection,
    table: str,
    match: str,
    lookup: str,
    extra: list[Any],
    limit: int,
) -> dict[str, tuple[float, int, tuple[str, ...]]]:
    """Walk ranked matches in batches; keep the best (score, rowid, extra) of ``limit`` chats.

    ``lookup`` selects ``seq, chat_id, *extra`` for the rowids of a batch (``{marks}`` is
    the placeholder list) and filters out trashed chats and other folders.
    """
    best: dict[str, tuple[float, int, tuple[str, ...]]] = {}
    batch = max(200, limit * 10)
    offset = 0
    while len(best) < limit and offset < RANK_WINDOW:
        part = dict(_ranked(c, table, match, offset, batch))
        if not part:
            break
        marks = ",".join("?" for _ in part)
        rows = c.execute(lookup.format(marks=marks), [*part, *extra]).fetchall()
        for row in sorted(rows, key=lambda r: part[int(r[0])]):
            seq = int(row[0])
            best.setdefault(str(row[1]), (-part[seq], seq, tuple(str(v) for v in row[2:])))
            if len(best) >= limit:
                break
        if len(part) < batch:
            break
        offset += batch
    return best


def _search_fts(
    c: sqlite3.Connection, workspace: str, terms: list[str], limit: int, folder_id: str | None
) -> list[SearchHit]:
    """FTS5 search: bm25 over the newest matches, best message per chat, titles boosted.

    Only the newest :data:`RANK_WINDOW` matching messages (and titles) are ranked, which
    keeps very common words fast; rarer words are ranked over every match.
    """
    match = _fts_match(terms)
    clause, extra = _folder_clause(folder_id)
    titles = _best_per_chat(
        c,
        "chats_fts",
        match,
        "SELECT c.seq, c.id FROM chats c WHERE c.seq IN ({marks}) "
        f"AND c.deleted_at IS NULL{clause}",
        extra,
        limit,
    )
    messages = _best_per_chat(
        c,
        "messages_fts",
        match,
        "SELECT m.seq, m.chat_id, m.id, m.role FROM messages m "
        "JOIN chats c ON c.id = m.chat_id "
        f"WHERE m.seq IN ({{marks}}) AND c.deleted_at IS NULL{clause}",
        extra,
        limit,
    )

    def snippets(chat_ids: list[str]) -> dict[str, str]:
        seqs = {messages[cid][1]: cid for cid in chat_ids}
        if not seqs:
            return {}
        marks = ",".join("?" for _ in seqs)
        return {
            seqs[int(row[0])]: str(row[1])
            for row in c.execute(
                "SELECT rowid, snippet(messages_fts, 0, ?, ?, ?, 16) FROM messages_fts "
                f"WHERE messages_fts MATCH ? AND rowid IN ({marks})",
                [SNIPPET_OPEN, SNIPPET_CLOSE, SNIPPET_ELLIPSIS, match, *seqs],
            )
        }

    def highlights(chat_ids: list[str]) -> dict[str, str]:
        seqs = [titles[cid][1] for cid in chat_ids]
        if not seqs:
            return {}
        marks = ",".join("?" for _ in seqs)
        return {
            str(row[0]): str(row[1])
            for row in c.execute(
                "SELECT c.id, highlight(chats_fts, 0, ?, ?) FROM chats_fts "
                "JOIN chats c ON c.seq = chats_fts.rowid "
                f"WHERE chats_fts MATCH ? AND chats_fts.rowid IN ({marks})",
                [SNIPPET_OPEN, SNIPPET_CLOSE, match, *seqs],
            )
        }

    return _hits(
        c,
        workspace,
        {cid: score * TITLE_BOOST for cid, (score, _, _) in titles.items()},
        {cid: _BestMessage(score, ids[0], ids[1]) for cid, (score, _, ids) in messages.items()},
        limit,
        snippets,
        highlights,
    )


# -- LIKE fallback ----------------------------------------------------------------------


def _search_like(
    c: sqlite3.Connection, workspace: str, terms: list[str], limit: int, folder_id: str | None
) -> list[SearchHit]:
    """Fallback without FTS5: every term as a LIKE substring, scored by occurrences."""
    clause, extra = _folder_clause(folder_id)
    patterns = [_like_pattern(t) for t in terms]
    title_where = " AND ".join("c.title LIKE ? ESCAPE '\\'" for _ in terms)
    content_where = " AND ".join("m.content LIKE ? ESCAPE '\\'" for _ in terms)
    title_rows = c.execute(
        f"SELECT c.id, c.title FROM chats c WHERE c.deleted_at IS NULL{clause} "
        f"AND {title_where} ORDER BY c.updated DESC LIMIT ?",
        [*extra, *patterns, limit * 10],
    ).fetchall()
    msg_rows = c.execute(
        "SELECT m.id, m.chat_id, m.role, m.content FROM messages m "
        f"JOIN chats c ON c.id = m.chat_id WHERE c.deleted_at IS NULL{clause} "
        f"AND {content_where} ORDER BY m.seq DESC LIMIT ?",
        [*extra, *patterns, limit * 50],
    ).fetchall()
    regex = _term_regex(terms)

    def occurrences(text: str) -> float:
        return float(len(regex.findall(text)))

    title_text = {str(row["id"]): str(row["title"]) for row in title_rows}
    titles = {cid: occurrences(text) * TITLE_BOOST for cid, text in title_text.items()}
    best: dict[str, _BestMessage] = {}
    content: dict[str, str] = {}
    for row in msg_rows:
        text = str(row["content"])
        score = occurrences(text) / (1.0 + len(text) / 2000.0)
        chat_id = str(row["chat_id"])
        if chat_id not in best or score > best[chat_id].score:
            best[chat_id] = _BestMessage(score, str(row["id"]), str(row["role"]))
            content[chat_id] = text
    return _hits(
        c,
        workspace,
        titles,
        best,
        limit,
        lambda chat_ids: {cid: make_snippet(content[cid], terms) for cid in chat_ids},
        lambda chat_ids: {cid: highlight(title_text[cid], terms) for cid in chat_ids},
    )
