"""Where chat databases live: ``data_dir()/chats/<folder_key>.sqlite3``."""

from __future__ import annotations

from pathlib import Path

from lsp_server.core.errors import StorageError
from lsp_server.core.paths import data_dir, folder_key

CHATS_SUBDIR = "chats"
DB_SUFFIX = ".sqlite3"


def chats_dir() -> Path:
    """Return the directory holding one chat database per workspace folder, created on demand."""
    try:
        path = data_dir() / CHATS_SUBDIR
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Cannot create the chat directory ({exc.strerror or exc}): "
            "make the data directory writable or set OPEN_LLM_LSP_DATA_DIR to a writable folder.",
            data={"path": str(getattr(exc, "filename", "") or "")},
        ) from exc
    return path


def chat_db_path(folder_uri: str) -> Path:
    """Return the database path for a workspace folder (URI or path, normalized first)."""
    return chats_dir() / f"{folder_key(folder_uri)}{DB_SUFFIX}"
