"""Chat records: plain dataclasses with snake_case fields, and the rules their values follow.

Timestamps are integers: milliseconds since the Unix epoch (UTC). Ids are uuid4 hex text.
Search snippets wrap each matched word in « and » (U+00AB, U+00BB) and mark cut text with
… (U+2026). Records know nothing of the client: the protocol layer turns them into its
camelCase JSON (``lsp_server/protocol/wire.py``).
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from lsp_server.core.errors import InvalidParams

Role = Literal["user", "assistant", "system"]
ROLES: tuple[str, ...] = ("user", "assistant", "system")
SortKey = Literal["updated", "created", "title"]

SNIPPET_OPEN = "\u00ab"
"""Marker placed before each matched word in search snippets: « (U+00AB)."""
SNIPPET_CLOSE = "\u00bb"
"""Marker placed after each matched word in search snippets: » (U+00BB)."""
SNIPPET_ELLIPSIS = "\u2026"
"""Marks text cut from either end of a snippet: … (U+2026)."""

NO_FOLDER = ""
"""``folder_id`` filter value selecting chats that are in no folder."""
DEFAULT_TITLE = "New chat"
MAX_TITLE = 500


@dataclass(slots=True)
class MessageStats:
    """Generation statistics of an assistant message (any field may be unknown: None)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    stop_reason: str | None = None
    model: str | None = None
    truncation: dict[str, Any] | None = None
    """What was cut to fit the context, e.g. ``{"droppedTurns": 3}`` (free-form JSON,
    stored and sent as it was given: see ``lsp_server.chat.prompt.Truncation``)."""


@dataclass(slots=True)
class Message:
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
class Chat:
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
class ChatDetail:
    """A chat plus its active branch, root first."""

    chat: Chat
    messages: list[Message]


@dataclass(slots=True)
class ChatPage:
    """One page of a chat list and the total number of chats matching the filter."""

    items: list[Chat]
    total: int
    offset: int
    limit: int


@dataclass(slots=True)
class Folder:
    """A user folder grouping chats inside one workspace database."""

    id: str
    name: str
    created_at: int
    chat_count: int
    workspace_folder: str
    """Normalized ``file://`` URI of the workspace folder whose database holds it."""


@dataclass(slots=True)
class SearchHit:
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


class ActiveLeaf(enum.Enum):
    """Sentinel type: append after the chat's active leaf, read inside the write transaction."""

    ACTIVE_LEAF = "activeLeaf"


ACTIVE_LEAF = ActiveLeaf.ACTIVE_LEAF
"""Pass as ``parent_id`` to append after the active leaf atomically (safe across processes)."""


class Unset(enum.Enum):
    """Sentinel type: an argument that was not given (distinct from None = clear)."""

    UNSET = 0


UNSET = Unset.UNSET


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


# -- the rules values follow (InvalidParams naming the problem) -------------------------


def check_role(role: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`."""
    if role not in ROLES:
        raise InvalidParams(f"Unknown role {role!r}: expected one of {', '.join(ROLES)}.")
    return role


def check_content(role: str, content: str, attachments: list[dict[str, Any]] | None) -> None:
    """User and system messages need text (a user message may carry only attachments)."""
    if not isinstance(content, str):
        raise InvalidParams("Message content must be a string.")
    if role == "assistant" or content.strip():
        return
    if role == "user" and attachments:
        return
    raise InvalidParams(f"The {role} message is empty: type some text first.")


def check_title(title: str) -> str:
    """Return a chat title with its whitespace collapsed, cut to :data:`MAX_TITLE`."""
    if not isinstance(title, str) or not title.strip():
        raise InvalidParams("A title cannot be empty.")
    title = " ".join(title.split())
    return title[:MAX_TITLE]


def check_name(name: str) -> str:
    """Return a folder name with its whitespace collapsed, cut to :data:`MAX_TITLE`."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidParams("A folder name cannot be empty.")
    return " ".join(name.split())[:MAX_TITLE]
