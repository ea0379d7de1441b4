"""Chats kept per workspace folder in SQLite: records, :class:`ChatStore`, multi-root.

Records' ``to_dict()`` gives the camelCase wire form. Timestamps are integers:
milliseconds since the Unix epoch (UTC). Ids are uuid4 hex text. Search snippets wrap each
matched word in « and » (U+00AB, U+00BB) and mark cut text with … (U+2026).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from lsp_server.core.errors import Conflict, InvalidParams, NotFound
from lsp_server.core.paths import normalize_folder_uri
from lsp_server.storage.db import DEFAULT_BUSY_TIMEOUT_S, FTS_TABLES, Database
from lsp_server.storage.paths import chat_db_path

log = logging.getLogger(__name__)

Role = Literal["user", "assistant", "system"]
ROLES: tuple[str, ...] = ("user", "assistant", "system")
SortKey = Literal["updated", "created", "title"]

SNIPPET_OPEN = "\u00ab"
"""Marker placed before each matched word in search snippets: « (U+00AB)."""
SNIPPET_CLOSE = "\u00bb"
"""Marker placed after each matched word in search snippets: » (U+00BB)."""
SNIPPET_ELLIPSIS = "\u2026"
"""Marks text cut from either end of a snippet: … (U+2026)."""


def camel(name: str) -> str:
    """Return the camelCase form of a snake_case field name (``tokens_per_s`` → ``tokensPerS``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _wire(value: Any) -> Any:
    """Convert nested records and lists of records to wire values; other values pass through."""
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value


class _Record:
    """Mixin for dataclass records: camelCase ``to_dict()``."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with camelCase keys."""
        instance: Any = self
        return {camel(f.name): _wire(getattr(self, f.name)) for f in dataclasses.fields(instance)}


@dataclass(slots=True)
class MessageStats(_Record):
    """Generation statistics of an assistant message (any field may be unknown: None)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    stop_reason: str | None = None
    model: str | None = None
    truncation: dict[str, Any] | None = None
    """What was cut to fit the context, e.g. ``{"droppedTurns": 3}`` (free-form JSON)."""


@dataclass(slots=True)
class Message(_Record):
    """One node of a chat's message tree, with its place among its siblings."""

    id: str
    chat_id: str
    parent_id: str | None
    role: str
    content: str
    thinking: str
    attachments: list[dict[str, Any]]
    created_at: int
    incomplete: bool
    stats: MessageStats | None
    """None for user and system messages."""
    sibling_count: int = 1
    sibling_index: int = 0
    """0-based position among the messages sharing this parent, oldest first."""
    sibling_ids: list[str] = field(default_factory=list)
    """Ids of the messages sharing this parent, oldest first (for ‹ 1/3 › navigation)."""


@dataclass(slots=True)
class Chat(_Record):
    """A chat's metadata (no messages)."""

    id: str
    title: str
    folder_id: str | None
    pinned: bool
    created_at: int
    updated_at: int
    preset: dict[str, Any] | None
    system_prompt: str | None
    model: str | None
    active_leaf_id: str | None
    deleted_at: int | None
    message_count: int
    workspace_folder: str
    """Normalized ``file://`` URI of the workspace folder whose database holds the chat."""


@dataclass(slots=True)
class ChatDetail(_Record):
    """A chat plus its active branch, root first."""

    chat: Chat
    messages: list[Message]


@dataclass(slots=True)
class ChatPage(_Record):
    """One page of a chat list and the total number of chats matching the filter."""

    items: list[Chat]
    total: int
    offset: int
    limit: int


@dataclass(slots=True)
class Folder(_Record):
    """A user folder grouping chats inside one workspace database."""

    id: str
    name: str
    created_at: int
    chat_count: int


@dataclass(slots=True)
class SearchHit(_Record):
    """One chat matching a search, with its best-matching message (if any).

    ``snippet`` and ``title_highlight`` wrap each matched word in « and »; ``snippet`` is
    cut with … at either end. ``score``: higher is more relevant.
    """

    chat_id: str
    chat_title: str
    title_highlight: str | None
    message_id: str | None
    role: str | None
    snippet: str | None
    score: float
    updated_at: int
    folder_id: str | None
    workspace_folder: str
    matched_in: list[str] = field(default_factory=list)
    """Where the words matched: ``"title"`` and/or ``"message"``."""


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


class _ActiveLeaf(enum.Enum):
    """Sentinel type: append after the chat's active leaf, read inside the write transaction."""

    ACTIVE_LEAF = "activeLeaf"


ACTIVE_LEAF = _ActiveLeaf.ACTIVE_LEAF
"""Pass as ``parent_id`` to append after the active leaf atomically (safe across processes)."""


class _Unset(enum.Enum):
    """Sentinel type: an argument that was not given (distinct from None = clear)."""

    UNSET = 0


UNSET = _Unset.UNSET

NO_FOLDER = ""
"""``folder_id`` filter value selecting chats that are in no folder."""

EXPORT_FORMAT = "open-llm-lsp.chat"
EXPORT_VERSION = 1
DEFAULT_TITLE = "New chat"
MAX_TITLE = 500
MAX_SEARCH_TERMS = 16
TITLE_BOOST = 2.0
RANK_WINDOW = 5000

_MSG_COLS = (
    "id, chat_id, parent_id, role, content, thinking, attachments_json, created, "
    "prompt_tokens, completion_tokens, ttft_ms, tokens_per_s, stop_reason, model, "
    "incomplete, truncation_json"
)
_CHAT_COLS = (
    "c.id, c.title, c.folder_id, c.pinned, c.created, c.updated, c.preset_json, "
    "c.system_prompt, c.model, c.active_leaf_id, c.deleted_at, "
    "(SELECT count(*) FROM messages m WHERE m.chat_id = c.id) AS message_count"
)
_SORT_COLUMNS: dict[str, str] = {
    "updated": "c.updated",
    "created": "c.created",
    "title": "c.title COLLATE NOCASE",
}
_INSERT_MSG = (
    "INSERT INTO messages (id, chat_id, parent_id, role, content, thinking, attachments_json, "
    "created, prompt_tokens, completion_tokens, ttft_ms, tokens_per_s, stop_reason, model, "
    "incomplete, truncation_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CHAT = (
    "INSERT INTO chats (id, title, folder_id, pinned, created, updated, preset_json, "
    "system_prompt, model, active_leaf_id, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_WORD = re.compile(r"\w+")
_IN_CHUNK = 500


def new_id() -> str:
    """Return a fresh id: uuid4 as 32 hex characters."""
    return uuid.uuid4().hex


_clock_lock = threading.Lock()
_last_ms = 0


def now_ms() -> int:
    """Return the time in ms since the epoch, strictly increasing within this process.

    Successive writes in the same millisecond still sort in the order they happened.
    """
    global _last_ms
    with _clock_lock:
        _last_ms = max(int(time.time() * 1000), _last_ms + 1)
        return _last_ms


def _dumps(value: Any) -> str | None:
    """Serialize to compact JSON, None stays NULL."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _loads(text: Any) -> Any:
    """Parse JSON text from a column (NULL → None)."""
    if text is None:
        return None
    return json.loads(str(text))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _chat_from_row(row: sqlite3.Row, workspace: str) -> Chat:
    """Build a Chat from a row selected with ``_CHAT_COLS``."""
    preset = _loads(row["preset_json"])
    return Chat(
        id=str(row["id"]),
        title=str(row["title"]),
        folder_id=_opt_str(row["folder_id"]),
        pinned=bool(row["pinned"]),
        created_at=int(row["created"]),
        updated_at=int(row["updated"]),
        preset=preset if isinstance(preset, dict) else None,
        system_prompt=_opt_str(row["system_prompt"]),
        model=_opt_str(row["model"]),
        active_leaf_id=_opt_str(row["active_leaf_id"]),
        deleted_at=_opt_int(row["deleted_at"]),
        message_count=int(row["message_count"]),
        workspace_folder=workspace,
    )


def _message_from_row(row: sqlite3.Row, sibling_count: int = 1, sibling_index: int = 0) -> Message:
    """Build a Message from a row selected with ``_MSG_COLS``."""
    role = str(row["role"])
    stats: MessageStats | None = None
    if role == "assistant":
        truncation = _loads(row["truncation_json"])
        stats = MessageStats(
            prompt_tokens=_opt_int(row["prompt_tokens"]),
            completion_tokens=_opt_int(row["completion_tokens"]),
            ttft_ms=_opt_float(row["ttft_ms"]),
            tokens_per_s=_opt_float(row["tokens_per_s"]),
            stop_reason=_opt_str(row["stop_reason"]),
            model=_opt_str(row["model"]),
            truncation=truncation if isinstance(truncation, dict) else None,
        )
    attachments = _loads(row["attachments_json"])
    return Message(
        id=str(row["id"]),
        chat_id=str(row["chat_id"]),
        parent_id=_opt_str(row["parent_id"]),
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


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidParams(f"Unknown role {role!r}: expected one of {', '.join(ROLES)}.")
    return role


def _check_content(role: str, content: str, attachments: list[dict[str, Any]] | None) -> None:
    """User and system messages need text (a user message may carry only attachments)."""
    if not isinstance(content, str):
        raise InvalidParams("Message content must be a string.")
    if role == "assistant" or content.strip():
        return
    if role == "user" and attachments:
        return
    raise InvalidParams(f"The {role} message is empty: type some text first.")


def _check_title(title: str) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidParams("A title cannot be empty.")
    title = " ".join(title.split())
    return title[:MAX_TITLE]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParams("A folder name cannot be empty.")
    return " ".join(name.split())[:MAX_TITLE]


def _search_terms(query: str) -> list[str]:
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


def _insert_copy(c: sqlite3.Connection, src: Chat, title: str) -> str:
    """Insert a new, unpinned chat with ``src``'s folder, preset, prompt and model."""
    copy_id = new_id()
    stamp = now_ms()
    c.execute(
        _INSERT_CHAT,
        (
            copy_id,
            title,
            src.folder_id,
            0,
            stamp,
            stamp,
            _dumps(src.preset),
            src.system_prompt,
            src.model,
            None,
            None,
        ),
    )
    return copy_id


class ChatStore:
    """Chats of one workspace folder, in ``data_dir()/chats/<folder_key>.sqlite3``.

    All methods are synchronous and serialized on one connection (safe to call from several
    threads). Several processes may write the same file: writes queue on SQLite's lock.
    """

    def __init__(
        self,
        folder_uri: str,
        *,
        path: Path | None = None,
        use_fts: bool | None = None,
        read_only: bool = False,
        integrity_check: bool = False,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        """Open (create, migrate or recover) the database of ``folder_uri``.

        ``path`` overrides the location (tests); ``use_fts=False`` forces the LIKE search
        fallback, None picks FTS5 when SQLite has it.
        """
        self.folder_uri = normalize_folder_uri(folder_uri)
        self.path = path if path is not None else chat_db_path(self.folder_uri)
        self._db = Database(
            self.path,
            use_fts=use_fts,
            read_only=read_only,
            integrity_check=integrity_check,
            busy_timeout_s=busy_timeout_s,
        )
        try:
            if not read_only:
                self._db.write(self._claim_folder)
            else:
                self._db.read(self._check_folder)
        except BaseException:
            self._db.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def recovered_from(self) -> Path | None:
        """Where a corrupt database was moved at open (None when nothing happened)."""
        return self._db.recovered_from

    @property
    def fts_enabled(self) -> bool:
        """Whether search uses FTS5 (False: the LIKE fallback)."""
        return self._db.fts

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _claim_folder(self, c: sqlite3.Connection) -> None:
        """Record the workspace folder URI in the database, or refuse another folder's file."""
        self._check_folder(c)
        c.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('folder_uri', ?)", (self.folder_uri,)
        )

    def _check_folder(self, c: sqlite3.Connection) -> None:
        row = c.execute("SELECT value FROM meta WHERE key = 'folder_uri'").fetchone()
        if row is not None and str(row["value"]) != self.folder_uri:
            raise Conflict(
                f"The chat database {self.path} belongs to {row['value']}, not {self.folder_uri}.",
                data={"path": str(self.path), "folderUri": str(row["value"])},
            )

    # -- internal lookups --------------------------------------------------------------

    def _chat(self, c: sqlite3.Connection, chat_id: str) -> Chat:
        row = c.execute(f"SELECT {_CHAT_COLS} FROM chats c WHERE c.id = ?", (chat_id,)).fetchone()
        if row is None:
            raise NotFound(f"No chat with id {chat_id!r}.", data={"chatId": chat_id})
        return _chat_from_row(row, self.folder_uri)

    def _require_chat(self, c: sqlite3.Connection, chat_id: str) -> None:
        if c.execute("SELECT 1 FROM chats WHERE id = ?", (chat_id,)).fetchone() is None:
            raise NotFound(f"No chat with id {chat_id!r}.", data={"chatId": chat_id})

    def _message(self, c: sqlite3.Connection, message_id: str) -> Message:
        row = c.execute(f"SELECT {_MSG_COLS} FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise NotFound(f"No message with id {message_id!r}.", data={"messageId": message_id})
        return _message_from_row(row)

    def _require_folder(self, c: sqlite3.Connection, folder_id: str) -> None:
        if c.execute("SELECT 1 FROM folders WHERE id = ?", (folder_id,)).fetchone() is None:
            raise NotFound(f"No folder with id {folder_id!r}.", data={"folderId": folder_id})

    def _messages_by_id(self, c: sqlite3.Connection, ids: Sequence[str]) -> dict[str, sqlite3.Row]:
        rows: dict[str, sqlite3.Row] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            marks = ",".join("?" for _ in chunk)
            for row in c.execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE id IN ({marks})", tuple(chunk)
            ):
                rows[str(row["id"])] = row
        return rows

    @staticmethod
    def _skeleton(
        c: sqlite3.Connection, chat_id: str
    ) -> tuple[dict[str, str | None], dict[str | None, list[str]]]:
        """Return parent-of and children (oldest first) maps of a chat's message tree."""
        parent_of: dict[str, str | None] = {}
        children: dict[str | None, list[str]] = {}
        for row in c.execute(
            "SELECT id, parent_id FROM messages WHERE chat_id = ? ORDER BY seq", (chat_id,)
        ):
            mid, parent = str(row[0]), _opt_str(row[1])
            parent_of[mid] = parent
            children.setdefault(parent, []).append(mid)
        return parent_of, children

    @staticmethod
    def _descend(children: dict[str | None, list[str]], start: str | None) -> str | None:
        """Follow the most recent child from ``start`` down to a leaf."""
        current = start
        while children.get(current):
            current = children[current][-1]
        return current

    def _path(self, c: sqlite3.Connection, chat_id: str, leaf: str | None) -> list[Message]:
        """Messages root→``leaf`` with sibling counts; a missing leaf falls back to newest."""
        parent_of, children = self._skeleton(c, chat_id)
        if leaf is None or leaf not in parent_of:
            leaf = self._descend(children, None)
        ids: list[str] = []
        current = leaf
        while current is not None:
            ids.append(current)
            current = parent_of[current]
        ids.reverse()
        rows = self._messages_by_id(c, ids)
        result: list[Message] = []
        for mid in ids:
            siblings = children[parent_of[mid]]
            message = _message_from_row(rows[mid], len(siblings), siblings.index(mid))
            message.sibling_ids = list(siblings)
            result.append(message)
        return result

    def _detail(self, c: sqlite3.Connection, chat_id: str) -> ChatDetail:
        chat = self._chat(c, chat_id)
        return ChatDetail(chat=chat, messages=self._path(c, chat_id, chat.active_leaf_id))

    def _sibling_info(self, c: sqlite3.Connection, message: Message) -> Message:
        rows = c.execute(
            "SELECT id FROM messages WHERE chat_id = ? AND parent_id IS ? ORDER BY seq",
            (message.chat_id, message.parent_id),
        ).fetchall()
        ids = [str(r[0]) for r in rows]
        message.sibling_count = len(ids)
        message.sibling_index = ids.index(message.id) if message.id in ids else 0
        message.sibling_ids = ids
        return message

    def _touch(self, c: sqlite3.Connection, chat_id: str, leaf: str | None = None) -> None:
        if leaf is None:
            c.execute("UPDATE chats SET updated = ? WHERE id = ?", (now_ms(), chat_id))
        else:
            c.execute(
                "UPDATE chats SET updated = ?, active_leaf_id = ? WHERE id = ?",
                (now_ms(), leaf, chat_id),
            )

    # -- chats -------------------------------------------------------------------------

    def create_chat(
        self,
        title: str | None = None,
        *,
        folder_id: str | None = None,
        preset: dict[str, Any] | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
    ) -> Chat:
        """Create an empty chat (title defaults to "New chat")."""
        clean = _check_title(title) if title is not None else DEFAULT_TITLE
        chat_id = new_id()

        def op(c: sqlite3.Connection) -> Chat:
            if folder_id is not None:
                self._require_folder(c, folder_id)
            stamp = now_ms()
            c.execute(
                _INSERT_CHAT,
                (
                    chat_id,
                    clean,
                    folder_id,
                    0,
                    stamp,
                    stamp,
                    _dumps(preset),
                    system_prompt,
                    model,
                    None,
                    None,
                ),
            )
            return self._chat(c, chat_id)

        return self._db.write(op)

    def get_chat(self, chat_id: str) -> ChatDetail:
        """Return a chat with its active branch (root→leaf), each message's sibling info."""
        return self._db.read(lambda c: self._detail(c, chat_id))

    def get_chat_info(self, chat_id: str) -> Chat:
        """Return a chat's metadata without messages."""
        return self._db.read(lambda c: self._chat(c, chat_id))

    def list_chats(
        self,
        *,
        sort: SortKey = "updated",
        descending: bool | None = None,
        folder_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ChatPage:
        """List chats not in the trash: pinned first, then by ``sort``; one page plus total.

        ``descending`` defaults to True for dates and False for titles. ``folder_id``: None
        lists every chat, :data:`NO_FOLDER` ("") those in no folder, an id that folder's.
        """
        if sort not in _SORT_COLUMNS:
            raise InvalidParams(f"Unknown sort {sort!r}: expected updated, created or title.")
        if offset < 0 or limit < 1:
            raise InvalidParams("offset must be >= 0 and limit >= 1.")
        desc = (sort != "title") if descending is None else descending
        direction = "DESC" if desc else "ASC"
        where = "c.deleted_at IS NULL"
        args: list[Any] = []
        if folder_id == NO_FOLDER:
            where += " AND c.folder_id IS NULL"
        elif folder_id is not None:
            where += " AND c.folder_id = ?"
            args.append(folder_id)
        order = f"c.pinned DESC, {_SORT_COLUMNS[sort]} {direction}, c.seq {direction}"

        def op(c: sqlite3.Connection) -> ChatPage:
            if folder_id:
                self._require_folder(c, folder_id)
            total = int(
                c.execute(f"SELECT count(*) FROM chats c WHERE {where}", args).fetchone()[0]
            )
            rows = c.execute(
                f"SELECT {_CHAT_COLS} FROM chats c WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            items = [_chat_from_row(r, self.folder_uri) for r in rows]
            return ChatPage(items=items, total=total, offset=offset, limit=limit)

        return self._db.read(op)

    def rename_chat(self, chat_id: str, title: str) -> Chat:
        """Rename a chat."""
        clean = _check_title(title)
        return self._update_chat_columns(chat_id, {"title": clean})

    def update_chat(
        self,
        chat_id: str,
        *,
        preset: dict[str, Any] | _Unset | None = UNSET,
        system_prompt: str | _Unset | None = UNSET,
        model: str | _Unset | None = UNSET,
    ) -> Chat:
        """Set a chat's preset snapshot, system prompt override or model (None clears)."""
        columns: dict[str, Any] = {}
        if not isinstance(preset, _Unset):
            if preset is not None and not isinstance(preset, dict):
                raise InvalidParams("preset must be an object or null.")
            columns["preset_json"] = _dumps(preset)
        if not isinstance(system_prompt, _Unset):
            columns["system_prompt"] = system_prompt
        if not isinstance(model, _Unset):
            columns["model"] = model
        return self._update_chat_columns(chat_id, columns)

    def set_pinned(self, chat_id: str, pinned: bool) -> Chat:
        """Pin (True) or unpin (False) a chat; pinned chats list first."""
        return self._update_chat_columns(chat_id, {"pinned": 1 if pinned else 0})

    def move_chat(self, chat_id: str, folder_id: str | None) -> Chat:
        """Move a chat into a folder (None: out of any folder)."""
        return self._update_chat_columns(chat_id, {"folder_id": folder_id}, check_folder=folder_id)

    def _update_chat_columns(
        self, chat_id: str, columns: dict[str, Any], check_folder: str | None = None
    ) -> Chat:
        """UPDATE whitelisted chat columns (names come from code, values are parameters)."""
        allowed = {"title", "preset_json", "system_prompt", "model", "pinned", "folder_id"}
        if not set(columns) <= allowed:  # pragma: no cover - programming error
            raise ValueError(f"unexpected columns {set(columns) - allowed}")

        def op(c: sqlite3.Connection) -> Chat:
            self._require_chat(c, chat_id)
            if check_folder is not None:
                self._require_folder(c, check_folder)
            if columns:
                assignments = ", ".join(f"{name} = ?" for name in columns)
                c.execute(
                    f"UPDATE chats SET {assignments} WHERE id = ?", [*columns.values(), chat_id]
                )
            return self._chat(c, chat_id)

        return self._db.write(op)

    def _copy_messages(
        self,
        c: sqlite3.Connection,
        rows: Sequence[sqlite3.Row],
        new_chat: str,
    ) -> dict[str, str]:
        """Insert copies of message rows (parents first) into ``new_chat``; return id map."""
        mapping: dict[str, str] = {}
        params = []
        for row in rows:
            fresh = new_id()
            mapping[str(row["id"])] = fresh
            parent = _opt_str(row["parent_id"])
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
        c.executemany(_INSERT_MSG, params)
        return mapping

    def duplicate_chat(self, chat_id: str, title: str | None = None) -> Chat:
        """Deep-copy a chat (every branch, new ids) as "<title> (copy)"; not pinned."""
        clean = _check_title(title) if title is not None else None

        def op(c: sqlite3.Connection) -> Chat:
            src = self._chat(c, chat_id)
            rows = c.execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE chat_id = ? ORDER BY seq", (chat_id,)
            ).fetchall()
            copy_id = _insert_copy(c, src, clean or _check_title(f"{src.title} (copy)"))
            mapping = self._copy_messages(c, rows, copy_id)
            leaf = mapping.get(src.active_leaf_id) if src.active_leaf_id else None
            c.execute("UPDATE chats SET active_leaf_id = ? WHERE id = ?", (leaf, copy_id))
            return self._chat(c, copy_id)

        return self._db.write(op)

    def branch_chat(self, message_id: str, title: str | None = None) -> ChatDetail:
        """Start a NEW chat holding the history root→``message_id`` (that message included)."""
        clean = _check_title(title) if title is not None else None

        def op(c: sqlite3.Connection) -> ChatDetail:
            message = self._message(c, message_id)
            src = self._chat(c, message.chat_id)
            path_ids = [m.id for m in self._path(c, src.id, message_id)]
            by_id = self._messages_by_id(c, path_ids)
            copy_id = _insert_copy(c, src, clean or _check_title(f"{src.title} (branch)"))
            mapping = self._copy_messages(c, [by_id[i] for i in path_ids], copy_id)
            c.execute(
                "UPDATE chats SET active_leaf_id = ? WHERE id = ?", (mapping[message_id], copy_id)
            )
            return self._detail(c, copy_id)

        return self._db.write(op)

    def delete_chat(self, chat_id: str) -> None:
        """Move a chat to the trash (restorable until the trash is emptied)."""

        def op(c: sqlite3.Connection) -> None:
            self._require_chat(c, chat_id)
            c.execute(
                "UPDATE chats SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (now_ms(), chat_id),
            )

        self._db.write(op)

    def clear_all(self) -> int:
        """Move every chat to the trash; return how many were moved."""
        return self._db.write(
            lambda c: (
                c.execute(
                    "UPDATE chats SET deleted_at = ? WHERE deleted_at IS NULL", (now_ms(),)
                ).rowcount
            )
        )

    def restore_chat(self, chat_id: str) -> Chat:
        """Take a chat out of the trash (its folder may have been deleted: then no folder)."""

        def op(c: sqlite3.Connection) -> Chat:
            self._require_chat(c, chat_id)
            c.execute("UPDATE chats SET deleted_at = NULL WHERE id = ?", (chat_id,))
            return self._chat(c, chat_id)

        return self._db.write(op)

    def restore_all(self) -> int:
        """Take every chat out of the trash; return how many."""
        return self._db.write(
            lambda c: (
                c.execute(
                    "UPDATE chats SET deleted_at = NULL WHERE deleted_at IS NOT NULL"
                ).rowcount
            )
        )

    def list_trash(self, *, offset: int = 0, limit: int = 50) -> ChatPage:
        """List trashed chats, most recently deleted first."""
        if offset < 0 or limit < 1:
            raise InvalidParams("offset must be >= 0 and limit >= 1.")

        def op(c: sqlite3.Connection) -> ChatPage:
            total = int(
                c.execute("SELECT count(*) FROM chats WHERE deleted_at IS NOT NULL").fetchone()[0]
            )
            rows = c.execute(
                f"SELECT {_CHAT_COLS} FROM chats c WHERE c.deleted_at IS NOT NULL "
                "ORDER BY c.deleted_at DESC, c.seq DESC LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            items = [_chat_from_row(r, self.folder_uri) for r in rows]
            return ChatPage(items=items, total=total, offset=offset, limit=limit)

        return self._db.read(op)

    def empty_trash(self) -> int:
        """Delete trashed chats and their messages for good; return how many chats."""
        count: int = self._db.write(
            lambda c: c.execute("DELETE FROM chats WHERE deleted_at IS NOT NULL").rowcount
        )
        log.info("emptied the trash of %s: %d chats deleted", self.folder_uri, count)
        return count

    # -- folders -----------------------------------------------------------------------

    def _folder(self, c: sqlite3.Connection, folder_id: str) -> Folder:
        row = c.execute(
            "SELECT f.id, f.name, f.created, (SELECT count(*) FROM chats c WHERE "
            "c.folder_id = f.id AND c.deleted_at IS NULL) FROM folders f WHERE f.id = ?",
            (folder_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"No folder with id {folder_id!r}.", data={"folderId": folder_id})
        return Folder(
            id=str(row[0]), name=str(row[1]), created_at=int(row[2]), chat_count=int(row[3])
        )

    def _check_unique_name(self, c: sqlite3.Connection, name: str, except_id: str | None) -> None:
        row = c.execute(
            "SELECT id FROM folders WHERE name = ? COLLATE NOCASE AND id IS NOT ?",
            (name, except_id),
        ).fetchone()
        if row is not None:
            raise Conflict(f"A folder named {name!r} already exists.", data={"folderId": row[0]})

    def create_folder(self, name: str) -> Folder:
        """Create a folder; names are unique (case-insensitive) → Conflict."""
        clean = _check_name(name)
        folder_id = new_id()

        def op(c: sqlite3.Connection) -> Folder:
            self._check_unique_name(c, clean, None)
            c.execute(
                "INSERT INTO folders (id, name, created) VALUES (?, ?, ?)",
                (folder_id, clean, now_ms()),
            )
            return self._folder(c, folder_id)

        return self._db.write(op)

    def rename_folder(self, folder_id: str, name: str) -> Folder:
        """Rename a folder (its chats stay in it)."""
        clean = _check_name(name)

        def op(c: sqlite3.Connection) -> Folder:
            self._require_folder(c, folder_id)
            self._check_unique_name(c, clean, folder_id)
            c.execute("UPDATE folders SET name = ? WHERE id = ?", (clean, folder_id))
            return self._folder(c, folder_id)

        return self._db.write(op)

    def delete_folder(self, folder_id: str) -> int:
        """Delete a folder; its chats (trashed ones too) move to no folder. Return how many."""

        def op(c: sqlite3.Connection) -> int:
            self._require_folder(c, folder_id)
            moved = c.execute(
                "UPDATE chats SET folder_id = NULL WHERE folder_id = ?", (folder_id,)
            ).rowcount
            c.execute("DELETE FROM folders WHERE id = ?", (folder_id,))
            return moved

        return self._db.write(op)

    def list_folders(self) -> list[Folder]:
        """List folders by name with the number of (non-trashed) chats in each."""

        def op(c: sqlite3.Connection) -> list[Folder]:
            rows = c.execute(
                "SELECT f.id, f.name, f.created, (SELECT count(*) FROM chats c WHERE "
                "c.folder_id = f.id AND c.deleted_at IS NULL) FROM folders f "
                "ORDER BY f.name COLLATE NOCASE, f.seq"
            ).fetchall()
            return [
                Folder(id=str(r[0]), name=str(r[1]), created_at=int(r[2]), chat_count=int(r[3]))
                for r in rows
            ]

        return self._db.read(op)

    # -- messages ----------------------------------------------------------------------

    def append_message(
        self,
        chat_id: str,
        parent_id: str | _ActiveLeaf | None,
        role: str,
        content: str,
        *,
        thinking: str = "",
        attachments: list[dict[str, Any]] | None = None,
        stats: MessageStats | None = None,
        incomplete: bool = False,
        created_at: int | None = None,
    ) -> Message:
        """Add a message under ``parent_id`` (None: a root; ACTIVE_LEAF: after the active leaf).

        The new message becomes the chat's active leaf. User and system messages need text;
        an assistant message may start empty (a streaming placeholder, ``incomplete=True``).
        """
        _check_role(role)
        _check_content(role, content, attachments)
        message_id = new_id()
        st = stats or MessageStats()

        def op(c: sqlite3.Connection) -> Message:
            if isinstance(parent_id, _ActiveLeaf):
                parent = self._chat(c, chat_id).active_leaf_id
            else:
                self._require_chat(c, chat_id)
                parent = parent_id
            if parent is not None:
                owner = c.execute("SELECT chat_id FROM messages WHERE id = ?", (parent,)).fetchone()
                if owner is None:
                    raise NotFound(f"No message with id {parent!r}.", data={"messageId": parent})
                if str(owner[0]) != chat_id:
                    raise InvalidParams(
                        f"Message {parent!r} belongs to another chat than {chat_id!r}."
                    )
            c.execute(
                _INSERT_MSG,
                (
                    message_id,
                    chat_id,
                    parent,
                    role,
                    content,
                    thinking or "",
                    _dumps(attachments) if attachments else None,
                    created_at if created_at is not None else now_ms(),
                    st.prompt_tokens,
                    st.completion_tokens,
                    st.ttft_ms,
                    st.tokens_per_s,
                    st.stop_reason,
                    st.model,
                    1 if incomplete else 0,
                    _dumps(st.truncation),
                ),
            )
            self._touch(c, chat_id, message_id)
            return self._sibling_info(c, self._message(c, message_id))

        return self._db.write(op)

    def edit_user_message(
        self,
        message_id: str,
        content: str,
        *,
        attachments: list[dict[str, Any]] | _Unset | None = UNSET,
    ) -> Message:
        """Create an edited copy of a user message as its new sibling (a new, active branch).

        Attachments are kept unless given. The caller then generates the assistant answer
        with the returned message as parent.
        """

        def op(c: sqlite3.Connection) -> Message:
            original = self._message(c, message_id)
            if original.role != "user":
                raise InvalidParams(
                    f"Message {message_id!r} is a {original.role} message; only user "
                    "messages can be edited."
                )
            files = original.attachments if isinstance(attachments, _Unset) else attachments
            _check_content("user", content, files)
            fresh = new_id()
            c.execute(
                _INSERT_MSG,
                (
                    fresh,
                    original.chat_id,
                    original.parent_id,
                    "user",
                    content,
                    "",
                    _dumps(files) if files else None,
                    now_ms(),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    0,
                    None,
                ),
            )
            self._touch(c, original.chat_id, fresh)
            return self._sibling_info(c, self._message(c, fresh))

        return self._db.write(op)

    def prepare_regenerate(self, message_id: str) -> Message:
        """Return the user message to answer again: an assistant message's parent, or itself.

        Nothing changes yet: the caller appends the new assistant message under the returned
        message (a sibling of the old answer), which makes it the active leaf.
        """

        def op(c: sqlite3.Connection) -> Message:
            message = self._message(c, message_id)
            if message.role == "user":
                return self._sibling_info(c, message)
            if message.role != "assistant" or message.parent_id is None:
                raise InvalidParams(f"Message {message_id!r} has no user message to answer again.")
            parent = self._message(c, message.parent_id)
            return self._sibling_info(c, parent)

        return self._db.read(op)

    def switch_branch(self, message_id: str) -> ChatDetail:
        """Make the branch through ``message_id`` active (down its most recent children)."""

        def op(c: sqlite3.Connection) -> ChatDetail:
            message = self._message(c, message_id)
            _, children = self._skeleton(c, message.chat_id)
            leaf = self._descend(children, message_id)
            c.execute("UPDATE chats SET active_leaf_id = ? WHERE id = ?", (leaf, message.chat_id))
            return self._detail(c, message.chat_id)

        return self._db.write(op)

    def update_message(
        self,
        message_id: str,
        *,
        content: str | None = None,
        thinking: str | None = None,
        stats: MessageStats | None = None,
        incomplete: bool | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> None:
        """Update a message in place while streaming; only the given fields change.

        ``None`` stats fields are left unchanged. One lookup and two UPDATEs, no tree reads:
        cheap to call every few hundred milliseconds.
        """
        columns: dict[str, Any] = {}
        if content is not None:
            columns["content"] = content
        if thinking is not None:
            columns["thinking"] = thinking
        if incomplete is not None:
            columns["incomplete"] = 1 if incomplete else 0
        if attachments is not None:
            columns["attachments_json"] = _dumps(attachments) if attachments else None
        if stats is not None:
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
                columns["truncation_json"] = _dumps(stats.truncation)

        def op(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT chat_id, role, attachments_json FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"No message with id {message_id!r}.", data={"messageId": message_id}
                )
            if content is not None:
                files = attachments if attachments is not None else _loads(row["attachments_json"])
                _check_content(str(row["role"]), content, files)
            if not columns:
                return
            assignments = ", ".join(f"{name} = ?" for name in columns)
            c.execute(
                f"UPDATE messages SET {assignments} WHERE id = ?", [*columns.values(), message_id]
            )
            self._touch(c, str(row["chat_id"]))

        self._db.write(op)

    def get_message(self, message_id: str) -> Message:
        """Return one message with its sibling info."""
        return self._db.read(lambda c: self._sibling_info(c, self._message(c, message_id)))

    def get_history(self, message_id: str) -> list[Message]:
        """Return the messages root→``message_id`` (the prompt history for that message)."""

        def op(c: sqlite3.Connection) -> list[Message]:
            message = self._message(c, message_id)
            return self._path(c, message.chat_id, message_id)

        return self._db.read(op)

    # -- search ------------------------------------------------------------------------

    def search(
        self, query: str, *, limit: int = 20, folder_id: str | None = None
    ) -> list[SearchHit]:
        """Find chats (not trashed) whose title or messages contain every word of ``query``.

        One hit per chat, best first, with its best message's snippet. Words match whole
        tokens with FTS5 (case- and accent-insensitive) and substrings in the LIKE fallback.
        Matches are wrapped in « » (see :data:`SNIPPET_OPEN`).
        """
        terms = _search_terms(query)
        if limit < 1:
            raise InvalidParams("limit must be >= 1.")
        if not terms:
            return []
        if self._db.fts:
            return self._db.read(lambda c: self._search_fts(c, terms, limit, folder_id))
        return self._db.read(lambda c: self._search_like(c, terms, limit, folder_id))

    @staticmethod
    def _folder_clause(folder_id: str | None) -> tuple[str, list[Any]]:
        if folder_id is None:
            return "", []
        if folder_id == NO_FOLDER:
            return " AND c.folder_id IS NULL", []
        return " AND c.folder_id = ?", [folder_id]

    @staticmethod
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
        self,
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
            part = dict(self._ranked(c, table, match, offset, batch))
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
        self, c: sqlite3.Connection, terms: list[str], limit: int, folder_id: str | None
    ) -> list[SearchHit]:
        """FTS5 search: bm25 over the newest matches, best message per chat, titles boosted.

        Only the newest :data:`RANK_WINDOW` matching messages (and titles) are ranked, which
        keeps very common words fast; rarer words are ranked over every match.
        """
        match = _fts_match(terms)
        clause, extra = self._folder_clause(folder_id)
        titles = self._best_per_chat(
            c,
            "chats_fts",
            match,
            "SELECT c.seq, c.id FROM chats c WHERE c.seq IN ({marks}) "
            f"AND c.deleted_at IS NULL{clause}",
            extra,
            limit,
        )
        title_hits = {cid: (score * TITLE_BOOST, seq) for cid, (score, seq, _) in titles.items()}
        messages = self._best_per_chat(
            c,
            "messages_fts",
            match,
            "SELECT m.seq, m.chat_id, m.id, m.role FROM messages m "
            "JOIN chats c ON c.id = m.chat_id "
            f"WHERE m.seq IN ({{marks}}) AND c.deleted_at IS NULL{clause}",
            extra,
            limit,
        )
        scores: dict[str, float] = {cid: score for cid, (score, _) in title_hits.items()}
        for chat_id, (score, _, _) in messages.items():
            scores[chat_id] = max(scores.get(chat_id, -1e300), score)
        if not scores:
            return []
        info = self._chat_brief(c, list(scores))
        ranked_chats = sorted(scores.items(), key=lambda kv: (kv[1], info[kv[0]][1]), reverse=True)
        chosen = ranked_chats[:limit]
        seqs = [messages[cid][1] for cid, _ in chosen if cid in messages]
        snippets: dict[int, str] = {}
        if seqs:
            marks = ",".join("?" for _ in seqs)
            for row in c.execute(
                "SELECT rowid, snippet(messages_fts, 0, ?, ?, ?, 16) FROM messages_fts "
                f"WHERE messages_fts MATCH ? AND rowid IN ({marks})",
                [SNIPPET_OPEN, SNIPPET_CLOSE, SNIPPET_ELLIPSIS, match, *seqs],
            ):
                snippets[int(row[0])] = str(row[1])
        highlights: dict[str, str] = {}
        title_seqs = [title_hits[cid][1] for cid, _ in chosen if cid in title_hits]
        if title_seqs:
            marks = ",".join("?" for _ in title_seqs)
            for row in c.execute(
                "SELECT c.id, highlight(chats_fts, 0, ?, ?) FROM chats_fts "
                "JOIN chats c ON c.seq = chats_fts.rowid "
                f"WHERE chats_fts MATCH ? AND chats_fts.rowid IN ({marks})",
                [SNIPPET_OPEN, SNIPPET_CLOSE, match, *title_seqs],
            ):
                highlights[str(row[0])] = str(row[1])
        hits: list[SearchHit] = []
        for chat_id, score in chosen:
            title, updated, folder = info[chat_id]
            msg = messages.get(chat_id)
            matched = (["title"] if chat_id in title_hits else []) + (
                ["message"] if msg is not None else []
            )
            hits.append(
                SearchHit(
                    chat_id=chat_id,
                    chat_title=title,
                    title_highlight=highlights.get(chat_id),
                    message_id=msg[2][0] if msg is not None else None,
                    role=msg[2][1] if msg is not None else None,
                    snippet=snippets.get(msg[1]) if msg is not None else None,
                    score=score,
                    updated_at=updated,
                    folder_id=folder,
                    workspace_folder=self.folder_uri,
                    matched_in=matched,
                )
            )
        return hits

    @staticmethod
    def _chat_brief(
        c: sqlite3.Connection, chat_ids: Sequence[str]
    ) -> dict[str, tuple[str, int, str | None]]:
        marks = ",".join("?" for _ in chat_ids)
        return {
            str(r[0]): (str(r[1]), int(r[2]), _opt_str(r[3]))
            for r in c.execute(
                f"SELECT id, title, updated, folder_id FROM chats WHERE id IN ({marks})",
                tuple(chat_ids),
            )
        }

    def _search_like(
        self, c: sqlite3.Connection, terms: list[str], limit: int, folder_id: str | None
    ) -> list[SearchHit]:
        """Fallback without FTS5: every term as a LIKE substring, scored by occurrences."""
        clause, extra = self._folder_clause(folder_id)
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

        scores: dict[str, float] = {}
        titles: dict[str, str] = {}
        for row in title_rows:
            chat_id = str(row["id"])
            titles[chat_id] = str(row["title"])
            scores[chat_id] = occurrences(titles[chat_id]) * TITLE_BOOST
        best_msg: dict[str, tuple[float, sqlite3.Row]] = {}
        for row in msg_rows:
            text = str(row["content"])
            score = occurrences(text) / (1.0 + len(text) / 2000.0)
            chat_id = str(row["chat_id"])
            if chat_id not in best_msg or score > best_msg[chat_id][0]:
                best_msg[chat_id] = (score, row)
        for chat_id, (score, _) in best_msg.items():
            scores[chat_id] = max(scores.get(chat_id, 0.0), score)
        if not scores:
            return []
        info = self._chat_brief(c, list(scores))
        ranked = sorted(scores.items(), key=lambda kv: (kv[1], info[kv[0]][1]), reverse=True)
        hits: list[SearchHit] = []
        for chat_id, score in ranked[:limit]:
            title, updated, folder = info[chat_id]
            msg = best_msg.get(chat_id)
            matched = (["title"] if chat_id in titles else []) + (
                ["message"] if msg is not None else []
            )
            hits.append(
                SearchHit(
                    chat_id=chat_id,
                    chat_title=title,
                    title_highlight=highlight(title, terms) if chat_id in titles else None,
                    message_id=str(msg[1]["id"]) if msg is not None else None,
                    role=str(msg[1]["role"]) if msg is not None else None,
                    snippet=make_snippet(str(msg[1]["content"]), terms) if msg else None,
                    score=score,
                    updated_at=updated,
                    folder_id=folder,
                    workspace_folder=self.folder_uri,
                    matched_in=matched,
                )
            )
        return hits

    # -- export / import ---------------------------------------------------------------

    def export_json(self, chat_id: str) -> dict[str, Any]:
        """Export a chat with its whole message tree as a JSON-ready dict.

        Shape: ``{"format": "open-llm-lsp.chat", "version": 1, "chat": {...},
        "messages": [...]}``; messages in creation order (parents before children). The
        folder is exported by name; trash state is not exported.
        """

        def op(c: sqlite3.Connection) -> dict[str, Any]:
            chat = self._chat(c, chat_id)
            folder_name: str | None = None
            if chat.folder_id is not None:
                folder_name = self._folder(c, chat.folder_id).name
            rows = c.execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE chat_id = ? ORDER BY seq", (chat_id,)
            ).fetchall()
            messages = []
            for row in rows:
                m = _message_from_row(row)
                messages.append(
                    {
                        "id": m.id,
                        "parentId": m.parent_id,
                        "role": m.role,
                        "content": m.content,
                        "thinking": m.thinking,
                        "attachments": m.attachments,
                        "createdAt": m.created_at,
                        "incomplete": m.incomplete,
                        "stats": m.stats.to_dict() if m.stats is not None else None,
                    }
                )
            return {
                "format": EXPORT_FORMAT,
                "version": EXPORT_VERSION,
                "chat": {
                    "id": chat.id,
                    "title": chat.title,
                    "folder": folder_name,
                    "pinned": chat.pinned,
                    "createdAt": chat.created_at,
                    "updatedAt": chat.updated_at,
                    "preset": chat.preset,
                    "systemPrompt": chat.system_prompt,
                    "model": chat.model,
                    "activeLeafId": chat.active_leaf_id,
                },
                "messages": messages,
            }

        return self._db.read(op)

    def export_markdown(self, chat_id: str) -> str:
        """Export a chat's active branch as Markdown (thinking in a collapsed <details>)."""
        detail = self.get_chat(chat_id)
        chat = detail.chat
        created = datetime.fromtimestamp(chat.created_at / 1000, tz=UTC)
        lines = [f"# {chat.title}", ""]
        meta = [f"Created {created.strftime('%Y-%m-%d %H:%M UTC')}"]
        if chat.model:
            meta.append(f"model `{chat.model}`")
        lines += ["_" + " · ".join(meta) + "_", ""]
        if chat.system_prompt:
            lines += ["**System prompt:**", "", chat.system_prompt, ""]
        names = {"user": "User", "assistant": "Assistant", "system": "System"}
        for m in detail.messages:
            heading = f"## {names.get(m.role, m.role)}"
            if m.sibling_count > 1:
                heading += f" ({m.sibling_index + 1}/{m.sibling_count})"
            lines += [heading, ""]
            if m.thinking:
                lines += [
                    "<details><summary>Thinking</summary>",
                    "",
                    m.thinking,
                    "",
                    "</details>",
                    "",
                ]
            lines += [m.content, ""]
            for item in m.attachments:
                label = item.get("name") or item.get("path") or item.get("uri") or "attachment"
                lines.append(f"- Attachment: {label}")
            if m.attachments:
                lines.append("")
            if m.incomplete:
                lines += ["_(incomplete)_", ""]
        return "\n".join(lines).rstrip() + "\n"

    def import_json(self, data: dict[str, Any]) -> Chat:
        """Import a chat exported by :meth:`export_json`.

        Ids are kept, unless the chat id or any message id already exists here: then the
        chat and all its messages get new ids (consistently). Everything else round-trips
        exactly. The folder is matched by name (created if missing).
        """
        chat_data, messages = _validate_export(data)

        def op(c: sqlite3.Connection) -> Chat:
            ids = [str(m["id"]) for m in messages]
            collision = c.execute(
                "SELECT 1 FROM chats WHERE id = ?", (chat_data["id"],)
            ).fetchone() is not None or any(
                c.execute(
                    f"SELECT 1 FROM messages WHERE id IN ({','.join('?' for _ in chunk)}) LIMIT 1",
                    tuple(chunk),
                ).fetchone()
                is not None
                for chunk in (ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK))
            )
            mapping = {mid: (new_id() if collision else mid) for mid in ids}
            if collision:
                log.info(
                    "imported chat %s collides with existing ids: new ids given", chat_data["id"]
                )
            chat_id = new_id() if collision else str(chat_data["id"])
            folder_id: str | None = None
            if chat_data.get("folder"):
                name = _check_name(str(chat_data["folder"]))
                row = c.execute(
                    "SELECT id FROM folders WHERE name = ? COLLATE NOCASE", (name,)
                ).fetchone()
                if row is not None:
                    folder_id = str(row[0])
                else:
                    folder_id = new_id()
                    c.execute(
                        "INSERT INTO folders (id, name, created) VALUES (?, ?, ?)",
                        (folder_id, name, now_ms()),
                    )
            leaf = chat_data.get("activeLeafId")
            c.execute(
                _INSERT_CHAT,
                (
                    chat_id,
                    str(chat_data["title"]),
                    folder_id,
                    1 if chat_data.get("pinned") else 0,
                    int(chat_data["createdAt"]),
                    int(chat_data["updatedAt"]),
                    _dumps(chat_data.get("preset")),
                    chat_data.get("systemPrompt"),
                    chat_data.get("model"),
                    mapping.get(leaf) if isinstance(leaf, str) else None,
                    None,
                ),
            )
            params = []
            for m in messages:
                st = m.get("stats") or {}
                parent = m.get("parentId")
                params.append(
                    (
                        mapping[str(m["id"])],
                        chat_id,
                        mapping[parent] if parent else None,
                        m["role"],
                        m["content"],
                        m.get("thinking") or "",
                        _dumps(m.get("attachments")) if m.get("attachments") else None,
                        int(m["createdAt"]),
                        st.get("promptTokens"),
                        st.get("completionTokens"),
                        st.get("ttftMs"),
                        st.get("tokensPerS"),
                        st.get("stopReason"),
                        st.get("model"),
                        1 if m.get("incomplete") else 0,
                        _dumps(st.get("truncation")),
                    )
                )
            c.executemany(_INSERT_MSG, params)
            return self._chat(c, chat_id)

        return self._db.write(op)


def _validate_export(data: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check an export's shape; InvalidParams naming the first problem."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise InvalidParams(f"Not a chat export (expected format {EXPORT_FORMAT!r}).")
    if data.get("version") != EXPORT_VERSION:
        raise InvalidParams(f"Unsupported chat export version {data.get('version')!r}.")
    chat = data.get("chat")
    messages = data.get("messages")
    if not isinstance(chat, dict) or not isinstance(messages, list):
        raise InvalidParams("A chat export needs a 'chat' object and a 'messages' list.")
    if not isinstance(chat.get("id"), str) or not chat["id"]:
        raise InvalidParams("chat.id must be a non-empty string.")
    _check_title(chat.get("title"))  # type: ignore[arg-type]
    for key in ("createdAt", "updatedAt"):
        if not isinstance(chat.get(key), int) or isinstance(chat.get(key), bool):
            raise InvalidParams(f"chat.{key} must be an integer (ms since epoch).")
    if chat.get("preset") is not None and not isinstance(chat.get("preset"), dict):
        raise InvalidParams("chat.preset must be an object or null.")
    seen: set[str] = set()
    for index, m in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(m, dict):
            raise InvalidParams(f"{where} must be an object.")
        mid = m.get("id")
        if not isinstance(mid, str) or not mid or mid in seen:
            raise InvalidParams(f"{where}.id must be a unique non-empty string.")
        parent = m.get("parentId")
        if parent is not None and parent not in seen:
            raise InvalidParams(f"{where}.parentId must name an earlier message.")
        role = m.get("role")
        if not isinstance(role, str):
            raise InvalidParams(f"{where}.role must be a string.")
        _check_role(role)
        attachments = m.get("attachments") or []
        if not isinstance(attachments, list):
            raise InvalidParams(f"{where}.attachments must be a list.")
        _check_content(role, m.get("content"), attachments)  # type: ignore[arg-type]
        if not isinstance(m.get("createdAt"), int):
            raise InvalidParams(f"{where}.createdAt must be an integer.")
        if m.get("stats") is not None and not isinstance(m.get("stats"), dict):
            raise InvalidParams(f"{where}.stats must be an object or null.")
        seen.add(mid)
    leaf = chat.get("activeLeafId")
    if leaf is not None and leaf not in seen:
        raise InvalidParams("chat.activeLeafId must name one of the messages.")
    return chat, messages


class WorkspaceChats:
    """The chat stores of several workspace folders (multi-root), kept strictly apart."""

    def __init__(self, folder_uris: Sequence[str] = (), **store_options: Any) -> None:
        """Open one :class:`ChatStore` per folder; ``store_options`` go to each store."""
        self._options = store_options
        self._stores: dict[str, ChatStore] = {}
        self._lock = threading.Lock()
        try:
            for uri in folder_uris:
                self.add_folder(uri)
        except BaseException:
            self.close()
            raise

    @property
    def folders(self) -> list[str]:
        """Normalized URIs of the open workspace folders."""
        return list(self._stores)

    @property
    def recovered(self) -> dict[str, Path]:
        """Folders whose corrupt database was moved aside at open → where it went."""
        return {uri: s.recovered_from for uri, s in self._stores.items() if s.recovered_from}

    def add_folder(self, folder_uri: str) -> ChatStore:
        """Open (or return the already open) store of a workspace folder."""
        uri = normalize_folder_uri(folder_uri)
        with self._lock:
            if uri not in self._stores:
                self._stores[uri] = ChatStore(uri, **self._options)
            return self._stores[uri]

    def remove_folder(self, folder_uri: str) -> None:
        """Close and forget a workspace folder's store (its database stays on disk)."""
        uri = normalize_folder_uri(folder_uri)
        with self._lock:
            store = self._stores.pop(uri, None)
        if store is not None:
            store.close()

    def store(self, folder_uri: str) -> ChatStore:
        """Return the store of an open workspace folder (NotFound otherwise)."""
        uri = normalize_folder_uri(folder_uri)
        try:
            return self._stores[uri]
        except KeyError:
            raise NotFound(
                f"Workspace folder {uri} is not open.", data={"folderUri": uri}
            ) from None

    def store_of_chat(self, chat_id: str) -> ChatStore:
        """Return the store holding ``chat_id`` (NotFound when no open folder has it)."""
        for store in list(self._stores.values()):
            try:
                store.get_chat_info(chat_id)
            except NotFound:
                continue
            return store
        raise NotFound(f"No chat with id {chat_id!r}.", data={"chatId": chat_id})

    def list_chats(
        self,
        *,
        sort: SortKey = "updated",
        descending: bool | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ChatPage:
        """List chats of every folder together; each item's ``workspace_folder`` says whose."""
        if offset < 0 or limit < 1:
            raise InvalidParams("offset must be >= 0 and limit >= 1.")
        desc = (sort != "title") if descending is None else descending
        items: list[Chat] = []
        total = 0
        for store in list(self._stores.values()):
            page = store.list_chats(sort=sort, descending=desc, offset=0, limit=offset + limit)
            items.extend(page.items)
            total += page.total

        def key(chat: Chat) -> Any:
            if sort == "title":
                return chat.title.casefold()
            return chat.created_at if sort == "created" else chat.updated_at

        items.sort(key=key, reverse=desc)
        items.sort(key=lambda chat: not chat.pinned)
        return ChatPage(
            items=items[offset : offset + limit], total=total, offset=offset, limit=limit
        )

    def search(self, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Search every folder; hits best first, each naming its workspace folder."""
        hits: list[SearchHit] = []
        for store in list(self._stores.values()):
            hits.extend(store.search(query, limit=limit))
        hits.sort(key=lambda h: (h.score, h.updated_at), reverse=True)
        return hits[:limit]

    def close(self) -> None:
        """Close every store."""
        with self._lock:
            stores = list(self._stores.values())
            self._stores.clear()
        for store in stores:
            store.close()
