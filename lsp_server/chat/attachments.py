"""Attachments: a file or a selection of it, added to a user message with its path.

An attachment is stored with the message as a plain dict (``Attachment.to_dict``) that
keeps the text it contributed, so the prompt of a past message can be rebuilt exactly
even after the file changed.

Files are read safely (:func:`read_attachment`), since a repository decides what its
files are: Windows UNC and device paths are refused by their text before any file-system
call; names matching the secret globs (``.env``, keys, credentials) are refused, by the
path asked for and by the file it resolves to; a symlink that leads out of the workspace
is refused (``notes.md -> ~/.ssh/id_rsa``); only regular files are read (not a FIFO or
``/dev/zero``), their size checked on the opened descriptor and the read bounded.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from lsp_server.core.errors import InvalidParams, NotFound, Refused, StorageError
from lsp_server.core.secrets import is_secret
from lsp_server.core.uris import uri_to_path

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Larger files are not attached whole (attach a selection instead)."""
_BINARY_PROBE = 8192

MAX_ATTACHMENT_CHARS = 48_000
"""Longer files or selections are cut (the prompt says so)."""

_LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "jsx",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".rs": "rust",
    ".go": "go",
    ".java": "java",
    ".kt": "kotlin",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".lua": "lua",
    ".sh": "bash",
    ".bash": "bash",
    ".zsh": "zsh",
    ".sql": "sql",
    ".html": "html",
    ".css": "css",
    ".scss": "scss",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".md": "markdown",
    ".xml": "xml",
    ".r": "r",
    ".scala": "scala",
    ".dart": "dart",
    ".zig": "zig",
    ".vue": "vue",
}


def language_for(path: str, language_id: str | None = None) -> str:
    """Fence language for a file: the editor's language id, else from the extension."""
    if language_id:
        return language_id
    return _LANGUAGES.get(PurePosixPath(path).suffix.lower(), "")


def _utf16_to_index(line: str, character: int) -> int:
    """Convert an LSP character offset (UTF-16 code units) to a Python string index."""
    if character <= 0:
        return 0
    units = 0
    for index, ch in enumerate(line):
        if units >= character:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def select_range(text: str, rng: dict[str, Any] | None) -> str:
    """Return the text inside an LSP range ``{start: {line, character}, end: {...}}``."""
    if rng is None:
        return text
    lines = text.splitlines(keepends=True)
    if not lines:
        return ""

    def offset(pos: dict[str, Any]) -> int:
        line = max(0, int(pos.get("line", 0)))
        if line >= len(lines):
            return len(text)
        before = sum(len(x) for x in lines[:line])
        return before + _utf16_to_index(lines[line], int(pos.get("character", 0)))

    start, end = offset(rng["start"]), offset(rng["end"])
    if end < start:
        start, end = end, start
    return text[start:end]


@dataclass
class Attachment:
    """A file (or a range of it) attached to a user message."""

    uri: str
    path: str
    """Shown to the model: relative to the workspace folder when inside it."""
    content: str
    language: str = ""
    range: dict[str, Any] | None = None
    truncated: bool = False

    @classmethod
    def make(
        cls,
        uri: str,
        path: str,
        text: str,
        *,
        rng: dict[str, Any] | None = None,
        language: str = "",
        limit: int = MAX_ATTACHMENT_CHARS,
    ) -> Attachment:
        """Build an attachment from a document's whole text and an optional range."""
        content = select_range(text, rng)
        truncated = len(content) > limit
        if truncated:
            content = content[:limit]
        return cls(uri, path, content, language_for(path, language), rng, truncated)

    @property
    def lines(self) -> tuple[int, int] | None:
        """1-based first and last line of the range (None for a whole file)."""
        if self.range is None:
            return None
        first = int(self.range["start"]["line"]) + 1
        last = int(self.range["end"]["line"]) + 1
        if int(self.range["end"].get("character", 0)) == 0 and last > first:
            last -= 1
        return first, last

    def to_dict(self) -> dict[str, Any]:
        """The form stored with the message (and returned to clients)."""
        return {
            "uri": self.uri,
            "path": self.path,
            "name": PurePosixPath(self.path).name,
            "language": self.language,
            "range": self.range,
            "content": self.content,
            "truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attachment:
        """Rebuild a stored attachment (unknown or missing keys tolerated)."""
        return cls(
            uri=str(data.get("uri") or ""),
            path=str(data.get("path") or data.get("name") or data.get("uri") or "attachment"),
            content=str(data.get("content") or ""),
            language=str(data.get("language") or ""),
            range=data.get("range") if isinstance(data.get("range"), dict) else None,
            truncated=bool(data.get("truncated")),
        )


def format_attachment(att: Attachment) -> str:
    """The text an attachment contributes to the prompt: its path, lines and a fence."""
    where = f"File `{att.path}`"
    lines = att.lines
    if lines is not None:
        first, last = lines
        where += f", line {first}" if first == last else f", lines {first}-{last}"
    fence = "```"
    while fence in att.content:
        fence += "`"
    body = att.content if att.content.endswith("\n") or not att.content else att.content + "\n"
    note = f"(cut to the first {len(att.content)} characters)\n" if att.truncated else ""
    return f"{where}:\n{fence}{att.language}\n{body}{fence}\n{note}"


def user_prompt_text(content: str, attachments: list[dict[str, Any]] | None) -> str:
    """A user message as the model sees it: attachments first, then the text."""
    parts = [format_attachment(Attachment.from_dict(a)) for a in attachments or []]
    if content.strip():
        parts.append(content)
    return "\n".join(parts).strip("\n")


# ---------------------------------------------------------------------------------------
# Reading attachments safely
# ---------------------------------------------------------------------------------------

_DOS_DEVICES = re.compile(
    r"(?i)^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$"
)


def refuse_unsafe_path_text(path: str, *, uri: str = "", windows: bool | None = None) -> None:
    """Refuse a path by its text alone, before any file-system call.

    Refused: Windows UNC and device namespaces (``\\\\host\\share``, ``\\\\?\\``,
    ``\\\\.\\``, ``\\??\\``) and their forward-slash forms (``//host/share``, which is
    also what a ``file://host/share`` URI becomes), NUL characters, and on Windows DOS
    device names (``CON``, ``NUL``, ``COM1``...).

    :raises Refused: the path names a network share or a device.
    """
    data = {"uri": uri or path}
    if "\x00" in path:
        raise Refused("Cannot attach this file: its name contains a NUL character.", data=data)
    text = path.replace("\\", "/")
    if text.startswith("//") or text.startswith("/??/"):
        raise Refused(
            "Cannot attach a file from a network share or a device path: open it from a "
            "local folder instead.",
            data=data,
        )
    is_windows = os.name == "nt" if windows is None else windows
    if is_windows and _DOS_DEVICES.match(text.rstrip("/").rsplit("/", 1)[-1].strip()):
        raise Refused("Cannot attach a device (CON, NUL, COM1...).", data=data)


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def read_attachment(
    uri: str,
    *,
    opened: tuple[str, str] | None = None,
    roots: Sequence[str] = (),
    secret_globs: Sequence[str] = (),
    limit: int = MAX_FILE_BYTES,
) -> tuple[str, str]:
    """The text (and language id) of a document to attach.

    :param uri: the document (a ``file:`` URI or a path).
    :param opened: ``(text, language id)`` when the editor has it open (no file is read).
    :param roots: the workspace folders (paths): a symlink inside one that resolves
        outside all of them is refused.
    :param secret_globs: file names never attached (``openLlm.completion.secretGlobs``).
    :param limit: the largest file read, in bytes.
    :raises Refused: a secret, a network share or device path, a link out of the
        workspace, or not a regular file.
    :raises NotFound: no such file. :raises InvalidParams: a folder, too large, binary.
    :raises StorageError: the file exists but cannot be read.
    """
    path = uri_to_path(uri)
    if path is None:
        raise InvalidParams(f"Cannot attach {uri}: not a local file.", data={"uri": uri})
    refuse_unsafe_path_text(path, uri=uri)
    name = PurePosixPath(path.replace("\\", "/")).name or path
    if is_secret(path, list(secret_globs)):
        raise Refused(
            f"{name} looks like a secret (openLlm.completion.secretGlobs): it is not attached.",
            data={"uri": uri},
        )
    if opened is not None:
        return opened
    return _read_file(path, name, uri, roots, secret_globs, limit), ""


def _read_file(
    path: str, name: str, uri: str, roots: Sequence[str], globs: Sequence[str], limit: int
) -> str:
    data = {"uri": uri}
    given = os.path.abspath(path)
    try:
        real = os.path.realpath(given, strict=True)
    except FileNotFoundError:
        raise NotFound(f"Cannot attach {uri}: no such file.", data=data) from None
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise Refused(
            f"Cannot attach {name}: its path cannot be resolved ({exc}).", data=data
        ) from exc
    real_roots = [os.path.realpath(r) for r in roots]
    if not _inside(real, real_roots):
        in_workspace = _inside(given, [os.path.abspath(r) for r in roots]) or _inside(
            os.path.realpath(os.path.dirname(given)), real_roots
        )
        if in_workspace or os.path.islink(given):
            raise Refused(
                f"Cannot attach {name}: it is a link to a file outside the workspace.",
                data=data,
            )
    if real != given and is_secret(real, list(globs)):
        raise Refused(f"Cannot attach {name}: it leads to a secret file.", data=data)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFound(f"Cannot attach {uri}: no such file.", data=data) from None
    except OSError as exc:
        raise StorageError(f"Cannot read {uri}: {exc.strerror or exc}", data=data) from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InvalidParams(f"Cannot attach {uri}: it is a folder.", data=data)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"Cannot attach {name}: it is not a regular file.", data=data)
        if info.st_size > limit:
            raise InvalidParams(
                f"{name} is too large to attach ({info.st_size // 1024} KB): attach a "
                "selection instead.",
                data={**data, "sizeBytes": info.st_size},
            )
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            block = os.read(fd, min(left, 1 << 20))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
    except OSError as exc:
        raise StorageError(f"Cannot read {uri}: {exc.strerror or exc}", data=data) from exc
    finally:
        os.close(fd)
    content = b"".join(chunks)
    if len(content) > limit:  # it grew while we read it
        raise InvalidParams(
            f"{name} is too large to attach: attach a selection instead.",
            data={**data, "sizeBytes": len(content)},
        )
    if b"\x00" in content[:_BINARY_PROBE]:
        raise InvalidParams(f"Cannot attach {name}: it is a binary file.", data=data)
    return content.decode("utf-8", errors="replace")
