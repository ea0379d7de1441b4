"""Chats kept per workspace folder in SQLite (stdlib ``sqlite3`` only).

- :mod:`~lsp_server.storage.records`: the records (plain dataclasses) and value rules.
- :mod:`~lsp_server.storage.chats`: :class:`ChatStore`, one folder's database: CRUD, the
  message tree, trash and folders.
- :mod:`~lsp_server.storage.search`: FTS5 and LIKE search, one builder of hits.
- :mod:`~lsp_server.storage.transfer`: JSON export/import and Markdown export.
- :mod:`~lsp_server.storage.rows`, :mod:`~lsp_server.storage.db`,
  :mod:`~lsp_server.storage.paths`: SQL rows, the connection and migrations, file places.
"""

from lsp_server.storage.chats import ChatStore
from lsp_server.storage.records import (
    ACTIVE_LEAF,
    DEFAULT_TITLE,
    NO_FOLDER,
    SNIPPET_CLOSE,
    SNIPPET_ELLIPSIS,
    SNIPPET_OPEN,
    UNSET,
    Chat,
    ChatDetail,
    ChatPage,
    Folder,
    Message,
    MessageStats,
    SearchHit,
)

__all__ = [
    "ACTIVE_LEAF",
    "DEFAULT_TITLE",
    "NO_FOLDER",
    "SNIPPET_CLOSE",
    "SNIPPET_ELLIPSIS",
    "SNIPPET_OPEN",
    "UNSET",
    "Chat",
    "ChatDetail",
    "ChatPage",
    "ChatStore",
    "Folder",
    "Message",
    "MessageStats",
    "SearchHit",
]
