"""Chats kept per workspace folder in SQLite (stdlib ``sqlite3`` only)."""

from lsp_server.storage.chats import (
    ACTIVE_LEAF,
    NO_FOLDER,
    SNIPPET_CLOSE,
    SNIPPET_ELLIPSIS,
    SNIPPET_OPEN,
    UNSET,
    Chat,
    ChatDetail,
    ChatPage,
    ChatStore,
    Folder,
    Message,
    MessageStats,
    SearchHit,
    WorkspaceChats,
)

__all__ = [
    "ACTIVE_LEAF",
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
    "WorkspaceChats",
]
