"""Where the server keeps its files: one user data directory, overridable for tests."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

APP_NAME = "open-llm-lsp"
DATA_DIR_ENV = "OPEN_LLM_LSP_DATA_DIR"


def data_dir() -> Path:
    """Return the user data directory (``$OPEN_LLM_LSP_DATA_DIR`` wins), created on demand."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        path = Path(override)
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def normalize_folder_uri(uri_or_path: str) -> str:
    """Return a canonical ``file://`` URI for a workspace folder (same folder, same key)."""
    if "://" in uri_or_path:
        parsed = urlparse(uri_or_path)
        if parsed.scheme != "file":
            return uri_or_path.rstrip("/")
        raw = unquote(parsed.path)
    else:
        raw = uri_or_path
    path = Path(raw).expanduser()
    try:
        path = path.resolve()
    except OSError:
        path = path.absolute()
    return path.as_uri()


def folder_key(uri_or_path: str) -> str:
    """Return a filesystem-safe, stable key for a workspace folder: ``name-hash``."""
    uri = normalize_folder_uri(uri_or_path)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", uri.rstrip("/").rsplit("/", 1)[-1])[:40] or "root"
    digest = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
    return f"{name}-{digest}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file beside it, fsync, ``os.replace``.

    A crash or a full disk never leaves a half-written file where a reader looks.

    :raises StorageError: when the file cannot be written.
    """
    from lsp_server.core.errors import StorageError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: {exc.strerror or exc}", data={"path": str(path)}
        ) from exc
