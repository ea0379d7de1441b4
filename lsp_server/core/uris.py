"""The one place that turns ``file://`` URIs into paths and back.

Editors name documents and folders by URI; the file system wants paths. Both
directions are pure text work (no file-system call), correct for POSIX paths,
Windows drive letters (``file:///C:/src/x.py`` is ``C:\\src\\x.py``) and Windows UNC
shares (``file://server/share/x.py`` is ``\\\\server\\share\\x.py``). The flavour follows
the running system unless ``windows`` is given, so tests can check both anywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import quote, unquote, urlsplit

__all__ = ["is_file_uri", "path_to_uri", "uri_to_path"]

_DRIVE = re.compile(r"^/?([A-Za-z]):(/|$)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: C:\ is a path


def _is_windows(windows: bool | None) -> bool:
    return os.name == "nt" if windows is None else windows


def is_file_uri(text: str) -> bool:
    """Whether ``text`` is a ``file:`` URI (any case)."""
    return text[:5].lower() == "file:"


def uri_to_path(uri: str, *, windows: bool | None = None) -> str | None:
    """Return the file-system path of a ``file:`` URI, or None for any other scheme.

    Text without a scheme is taken as a path already and returned unchanged.
    """
    if not _SCHEME.match(uri):
        return uri
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        return None
    path = unquote(parts.path)
    host = unquote(parts.netloc)
    if _is_windows(windows):
        if host and host.lower() != "localhost":
            return str(PureWindowsPath(f"//{host}{path}"))
        drive = _DRIVE.match(path)
        if drive:
            path = f"{drive.group(1).upper()}:{path[drive.end(1) + 1 :] or '/'}"
        return str(PureWindowsPath(path))
    if host and host.lower() != "localhost":
        return f"//{host}{path}"
    return str(PurePosixPath(path or "/"))


def path_to_uri(path: str, *, windows: bool | None = None) -> str:
    """Return the ``file:`` URI of an absolute ``path``."""
    if _is_windows(windows):
        win = PureWindowsPath(path)
        text = win.as_posix()
        if text.startswith("//"):  # UNC: //server/share/rest
            host, _, rest = text[2:].partition("/")
            return f"file://{quote(host)}/{quote(rest)}"
        if win.drive:
            text = f"/{win.drive[0].upper()}:{text[len(win.drive) :]}"
            return "file://" + quote(text, safe="/:")
        return "file://" + quote(text)
    return "file://" + quote(str(PurePosixPath(path)))
