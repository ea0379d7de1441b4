"""Where the server keeps its files: one user data directory, overridable for tests.

Private by default: the data directory is created ``0700`` (and tightened to it when it
is ours and looser), files holding user data are created ``0600``
(:func:`create_private_file`; atomic writes use ``mkstemp``, which is ``0600`` too).
:func:`read_head` reads a file that someone else may have put there: regular files only,
checked on the opened descriptor, never more than a bound.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

APP_NAME = "open-llm-lsp"
DATA_DIR_ENV = "OPEN_LLM_LSP_DATA_DIR"


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_checked: set[str] = set()
_checked_lock = threading.Lock()


def data_dir() -> Path:
    """Return the user data directory (``$OPEN_LLM_LSP_DATA_DIR`` wins), created on demand.

    It holds chats, acceptances and consent, so it is created ``0700``; an existing one
    owned by this user with group or other access is tightened to ``0700`` (once per
    process).
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        path = Path(override)
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    key = str(path)
    if key not in _checked:
        with _checked_lock:
            _make_private(path, PRIVATE_DIR_MODE)
            _checked.add(key)
    return path


def _make_private(path: Path, mode: int) -> None:
    """chmod ``path`` to ``mode`` when this user owns it and it grants group/other access."""
    try:
        st = path.stat()
        if hasattr(os, "getuid") and st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, mode)
    except OSError:
        pass  # not ours to change, or gone: keep going with what is there


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` if it does not exist, and tighten an existing
    one (and SQLite's ``-wal``/``-shm``/``-journal`` beside it) that this user owns.

    Call before a library (SQLite) creates the file with its own, wider default mode;
    SQLite gives its side files the mode of the main file.
    """
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, PRIVATE_FILE_MODE)
    except FileExistsError:  # pragma: no cover - O_CREAT without O_EXCL never raises it
        fd = -1
    except OSError:
        fd = -1  # a symlink (O_NOFOLLOW), read-only place...: let the caller's open report it
    if fd >= 0:
        os.close(fd)
    for side in ("", "-wal", "-shm", "-journal"):
        candidate = path.with_name(path.name + side)
        if candidate.exists():
            _make_private(candidate, PRIVATE_FILE_MODE)


def read_head(path: Path, limit: int) -> bytes | None:
    """The first ``limit`` bytes of a regular file, or None when it is not one or fails.

    The file is opened without blocking (a FIFO cannot hang the caller) and checked on the
    opened descriptor, so a symlink swapped for a device between a check and the read
    changes nothing.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            block = os.read(fd, min(left, 1 << 20))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


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
