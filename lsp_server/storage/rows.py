"""How records sit in SQLite: column lists, rows → records, lookups and the message tree.

Shared by the store (:mod:`~lsp_server.storage.chats`), search
(:mod:`~lsp_server.storage.search`) and export/import (:mod:`~lsp_server.storage.transfer`).
Every function takes the connection of a transaction the caller opened; SQL is
parameterized, and the only names put into SQL text come from this module.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from lsp_server.core.errors import NotFound
from lsp_server.storage.records import (
    Chat,
    ChatDetail,
    Folder,
    Message,
    MessageStats,
    new_id,
    now_ms,
)

MSG_COLS = (
    "id, chat_id, parent_id, role, content, thinking, attachments_json, created, "
    "prompt_tokens, completion_tokens, ttft_ms, tokens_per_s, stop_reason, model, "
    "incomplete, truncation_json"
)
CHAT_COLS = (
    "c.id, c.title, c.folder_id, c.pinned, c.created, c.updated, c.preset_json, "
    "c.system_prompt, c.model, c.active_leaf_id, c.deleted_at, "
    "(SELECT count(*) FROM messages m WHERE m.chat_id = c.id) AS message_count"
)
INSERT_MSG = (
    "INSERT INTO messages (id, chat_id, parent_id, role, content, thinking, attachments_json, "
    "created, prompt_tokens, completion_tokens, ttft_ms, tokens_per_s, stop_reason, model, "
    "incomplete, truncation_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_CHAT = (
    "INSERT INTO chats (id, title, folder_id, pinned, created, updated, preset_json, "
    "system_prompt, model, active_leaf_id, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
IN_CHUNK = 500
"""Ids per ``IN (...)`` list (SQLite limits the number of parameters)."""
_FOLDER_SELECT = (
    "SELECT f.id, f.name, f.created, (SELECT count(*) FROM chats c WHERE "
    "c.folder_id = f.id AND c.deleted_at IS NULL) FROM folders f"
)


def dumps(value: Any) -> str | None:
    """Serialize to compact JSON, None stays NULL."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def loads(text: Any) -> Any:
    """Parse JSON text from a column (NULL → None)."""
    if text is None:
        return None
    return json.loads(str(text))


def opt_int(value: Any) -> int | None:
    """``int(value)``, None stays None."""
    return None if value is None else int(value)


def opt_float(value: Any) -> float | None:
    """``float(value)``, None stays None."""
    return None if value is None else float(value)


def opt_str(value: Any) -> str | None:
    """``str(value)``, None stays None."""
    return None if value is None else str(value)


def chat_from_row(row: sqlite3.Row, workspace: str) -> Chat:
    """Build a Chat from a row selected with :data:`CHAT_COLS`."""
    preset = loads(row["preset_json"])
    return Chat(
        id=str(row["id"]),
        title=str(row["title"]),
        folder_id=opt_str(row["folder_id"]),
        pinned=bool(row["pinned"]),
        created_at=int(row["created"]),
        updated_at=int(row["updated"]),
        preset=preset if isinstance(preset, dict) else None,
        system_prompt=opt_str(row["system_prompt"]),
        model=opt_str(row["model"]),
        active_leaf_id=opt_str(row["active_leaf_id"]),
        deleted_at=opt_int(row["deleted_at"]),
        message_count=int(row["message_count"]),
        workspace_folder=workspace,
    )


def message_from_row(row: sqlite3.Row, sibling_count: int = 1, sibling_index: int = 0) -> Message:
    """Build a Message from a row selected with :data:`MSG_COLS`."""
    role = str(row["role"])
    stats: MessageStats | None = None
    if role == "assistant":
        truncation = loads(row["truncation_json"])
        stats = MessageStats(
            prompt_tokens=opt_int(row["prompt_tokens"]),
            completion_tokens=opt_int(row["completion_tokens"]),
            ttft_ms=opt_float(row["ttft_ms"]),
            tokens_per_s=opt_float(row["tokens_per_s"]),
            stop_reason=opt_str(row["stop_reason"]),
            model=opt_str(row["model"]),
            truncation=truncation if isinstance(truncation, dict) else None,
        )
    attachments = loads(row["attachments_json"])
    return Message(
        id=str(row["id"]),
        chat_id=str(row["chat_id"]),
        parent_id=opt_str(row["parent_id"]),
        role=role,
        content=str(row["content"]),
        thinking=str(row["thinking"]),
        attachments=attachments if isinstance(attachments, list) else [],
        created_at=int(row["created"]),
        incomplete=bool(row["incomplete"]),
        stats=stats,
        sibling_count=sibling_count,
        sibling_index=sibling_index,
    )


def folder_from_row(row: Sequence[Any], workspace: str) -> Folder:
    """Build a Folder from a row selected with ``_FOLDER_SELECT``."""
    return Folder(
        id=str(row[0]),
        name=str(row[1]),
        created_at=int(row[2]),
        chat_count=int(row[3]),
        workspace_folder=workspace,
    )


def chat_values(
    chat_id: str,
    title: str,
    *,
    folder_id: str | None = None,
    pinned: bool = False,
    created: int,
    updated: int,
    preset: Any = None,
    system_prompt: str | None = None,
    model: str | None = None,
    active_leaf_id: str | None = None,
) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_CHAT` for a chat not in the trash."""
    return (
        chat_id,
        title,
        folder_id,
        1 if pinned else 0,
        created,
        updated,
        dumps(preset),
        system_prompt,
        model,
        active_leaf_id,
        None,
    )


def message_values(
    message_id: str,
    chat_id: str,
    parent_id: str | None,
    role: str,
    content: str,
    *,
    thinking: str = "",
    attachments: Any = None,
    created: int,
    stats: MessageStats | None = None,
    incomplete: bool = False,
) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_MSG` (no attachments and no stats are stored as NULL)."""
    st = stats or MessageStats()
    return (
        message_id,
        chat_id,
        parent_id,
        role,
        content,
        thinking or "",
        dumps(attachments) if attachments else None,
        created,
        st.prompt_tokens,
        st.completion_tokens,
        st.ttft_ms,
        st.tokens_per_s,
        st.stop_reason,
        st.model,
        1 if incomplete else 0,
        dumps(st.truncation),
    )


def stats_columns(stats: MessageStats) -> dict[str, Any]:
    """The message columns to set for ``stats``: its known (not None) values only."""
    columns: dict[str, Any] = {}
    for name in (
        "prompt_tokens",
        "completion_tokens",
        "ttft_ms",
        "tokens_per_s",
        "stop_reason",
        "model",
    ):
        value = getattr(stats, name)
        if value is not None:
            columns[name] = value
    if stats.truncation is not None:
        columns["truncation_json"] = dumps(stats.truncation)
    return columns


# -- lookups (NotFound naming the missing id) -------------------------------------------


def chat(c: sqlite3.Connection, chat_id: str, workspace: str) -> Chat:
    """Return a chat's metadata."""
    row = c.execute(f"SELECT {CHAT_COLS} FROM chats c WHERE c.id = ?", (chat_id,)).fetchone()
    if row is None:
        raise NotFound(f"No chat with id {chat_id!r}.", data={"chatId": chat_id})
    return chat_from_row(row, workspace)


def require_chat(c: sqlite3.Connection, chat_id: str) -> None:
    """Raise NotFound unless the chat exists."""
    if c.execute("SELECT 1 FROM chats WHERE id = ?", (chat_id,)).fetchone() is None:
        raise NotFound(f"No chat with id {chat_id!r}.", data={"chatId": chat_id})


def message(c: sqlite3.Connection, message_id: str) -> Message:
    """Return one message (without sibling info)."""
    row = c.execute(f"SELECT {MSG_COLS} FROM messages WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        raise NotFound(f"No message with id {message_id!r}.", data={"messageId": message_id})
    return message_from_row(row)


def folder(c: sqlite3.Connection, folder_id: str, workspace: str) -> Folder:
    """Return a folder with its number of (non-trashed) chats."""
    row = c.execute(f"{_FOLDER_SELECT} WHERE f.id = ?", (folder_id,)).fetchone()
    if row is None:
        raise NotFound(f"No folder with id {folder_id!r}.", data={"folderId": folder_id})
    return folder_from_row(row, workspace)


def folders(c: sqlite3.Connection, workspace: str) -> list[Folder]:
    """Return every folder by name with its number of (non-trashed) chats."""
    rows = c.execute(f"{_FOLDER_SELECT} ORDER BY f.name COLLATE NOCASE, f.seq").fetchall()
    return [folder_from_row(r, workspace) for r in rows]


def require_folder(c: sqlite3.Connection, folder_id: str) -> None:
    """Raise NotFound unless the folder exists."""
    if c.execute("SELECT 1 FROM folders WHERE id = ?", (folder_id,)).fetchone() is None:
        raise NotFound(f"No folder with id {folder_id!r}.", data={"folderId": folder_id})


def messages_by_id(c: sqlite3.Connection, ids: Sequence[str]) -> dict[str, sqlite3.Row]:
    """Return the message rows of ``ids`` (selected with :data:`MSG_COLS`) by id."""
    rows: dict[str, sqlite3.Row] = {}
    for i in range(0, len(ids), IN_CHUNK):
        chunk = ids[i : i + IN_CHUNK]
        marks = ",".join("?" for _ in chunk)
        for row in c.execute(
            f"SELECT {MSG_COLS} FROM messages WHERE id IN ({marks})", tuple(chunk)
        ):
            rows[str(row["id"])] = row
    return rows


# -- the message tree -------------------------------------------------------------------


def skeleton(
    c: sqlite3.Connection, chat_id: str
) -> tuple[dict[str, str | None], dict[str | None, list[str]]]:
    """Return parent-of and children (oldest first) maps of a chat's message tree."""
    parent_of: dict[str, str | None] = {}
    children: dict[str | None, list[str]] = {}
    for row in c.execute(
        "SELECT id, parent_id FROM messages WHERE chat_id = ? ORDER BY seq", (chat_id,)
    ):
        mid, parent = str(row[0]), opt_str(row[1])
        parent_of[mid] = parent
        children.setdefault(parent, []).append(mid)
    return parent_of, children


def descend(children: dict[str | None, list[str]], start: str | None) -> str | None:
    """Follow the most recent child from ``start`` down to a leaf."""
    current = start
    while children.get(current):
        current = children[current][-1]
    return current


def path(c: sqlite3.Connection, chat_id: str, leaf: str | None) -> list[Message]:
    """Messages root→``leaf`` with sibling info; a missing leaf falls back to the newest."""
    parent_of, children = skeleton(c, chat_id)
    if leaf is None or leaf not in parent_of:
        leaf = descend(children, None)
    ids: list[str] = []
    current = leaf
    while current is not None:
        ids.append(current)
        current = parent_of[current]
    ids.reverse()
    rows = messages_by_id(c, ids)
    result: list[Message] = []
    for mid in ids:
        siblings = children[parent_of[mid]]
        found = message_from_row(rows[mid], len(siblings), siblings.index(mid))
        found.sibling_ids = list(siblings)
        result.append(found)
    return result


def detail(c: sqlite3.Connection, chat_id: str, workspace: str) -> ChatDetail:
    """Return a chat with its active branch."""
    found = chat(c, chat_id, workspace)
    return ChatDetail(chat=found, messages=path(c, chat_id, found.active_leaf_id))


def with_siblings(c: sqlite3.Connection, found: Message) -> Message:
    """Fill in a message's sibling count, index and ids."""
    rows = c.execute(
        "SELECT id FROM messages WHERE chat_id = ? AND parent_id IS ? ORDER BY seq",
        (found.chat_id, found.parent_id),
    ).fetchall()
    ids = [str(r[0]) for r in rows]
    found.sibling_count = len(ids)
    found.sibling_index = ids.index(found.id) if found.id in ids else 0
    found.sibling_ids = ids
    return found


# -- copies -----------------------------------------------------------------------------


def insert_copy(c: sqlite3.Connection, src: Chat, title: str) -> str:
    """Insert a new, unpinned chat with ``src``'s folder, preset, prompt and model."""
    copy_id = new_id()
    stamp = now_ms()
    values = chat_values(
        copy_id,
        title,
        folder_id=src.folder_id,
        created=stamp,
        updated=stamp,
        preset=src.preset,
        system_prompt=src.system_prompt,
        model=src.model,
    )
    c.execute(INSERT_CHAT, values)
    return copy_id


def copy_messages(
    c: sqlite3.Connection, rows: Sequence[sqlite3.Row], new_chat: str
) -> dict[str, str]:
    """Insert copies of message rows (parents first) into ``new_chat``; return the id map."""
    mapping: dict[str, str] = {}
    params = []
    for row in rows:
        fresh = new_id()
        mapping[str(row["id"])] = fresh
        parent = opt_str(row["parent_id"])
        params.append(
            (
                fresh,
                new_chat,
                mapping[parent] if parent is not None else None,
                row["role"],
                row["content"],
                row["thinking"],
                row["attachments_json"],
                row["created"],
                row["prompt_tokens"],
                row["completion_tokens"],
                row["ttft_ms"],
                row["tokens_per_s"],
                row["stop_reason"],
                row["model"],
                row["incomplete"],
                row["truncation_json"],
            )
        )
    c.executemany(INSERT_MSG, params)
    return mapping
