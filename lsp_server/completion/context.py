"""What the model sees around the cursor: line windows and a ring of extra-context chunks.

Everything here is plain text work; token budgets are applied by
:mod:`lsp_server.completion.prompt`. Windows start on line blocks
(``align_lines``), so moving the cursor a few lines does not shift the start of
the prompt and invalidate the KV cache.
"""

from __future__ import annotations

import fnmatch
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from lsp_server.core.secrets import DEFAULT_SECRET_GLOBS, is_secret


def matches_any(path: str, globs: list[str]) -> bool:
    """Whether ``path`` (or its base name) matches one of ``globs``."""
    norm = path.replace("\\", "/")
    name = norm.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(norm, g) or fnmatch.fnmatch(name, g) for g in globs)


@dataclass(frozen=True)
class CursorWindow:
    """The text around the cursor, split where the FIM layout needs it."""

    path: str
    language: str
    before: str
    """Whole lines above the cursor's line, from an aligned start line."""
    line_prefix: str
    """The cursor line up to the cursor (what the user is typing)."""
    line_suffix: str
    """The cursor line after the cursor."""
    after: str
    """Whole lines below the cursor's line."""
    first_line: int
    """Line number of the first line in ``before``."""

    @property
    def indent(self) -> int:
        """Indentation (columns) of the cursor's block: the cursor column on a blank line."""
        if not self.line_prefix.strip():
            return len(self.line_prefix)
        return len(self.line_prefix) - len(self.line_prefix.lstrip(" \t"))


def cursor_window(
    text: str,
    line: int,
    character: int,
    *,
    path: str = "",
    language: str = "",
    lines_before: int = 256,
    lines_after: int = 64,
    align_lines: int = 16,
) -> CursorWindow:
    """Cut the windows around ``(line, character)`` (character in code points)."""
    lines = text.split("\n")
    line = max(0, min(line, len(lines) - 1))
    current = lines[line]
    character = max(0, min(character, len(current)))
    start = max(0, line - lines_before)
    if align_lines > 1:
        start -= start % align_lines
    end = min(len(lines), line + 1 + lines_after)
    before = "".join(f"{ln}\n" for ln in lines[start:line])
    after = "".join(f"\n{ln}" for ln in lines[line + 1 : end])
    return CursorWindow(
        path=path,
        language=language,
        before=before,
        line_prefix=current[:character],
        line_suffix=current[character:],
        after=after,
        first_line=start,
    )


@dataclass(frozen=True)
class Chunk:
    """A slice of another file used as extra context."""

    path: str
    text: str
    lines: frozenset[str] = field(compare=False, repr=False, default=frozenset())


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / max(1, len(a | b))


class ChunkRing:
    """Up to ``capacity`` chunks from other open or recently edited files.

    New chunks go to the end (older ones stay put, so the start of the prompt stays
    cached); a chunk that nearly duplicates a newer one (Jaccard > 0.9 on lines) is
    evicted; secret files are never admitted.
    """

    def __init__(
        self,
        capacity: int = 16,
        chunk_lines: int = 64,
        secret_globs: tuple[str, ...] | list[str] = DEFAULT_SECRET_GLOBS,
    ) -> None:
        self.capacity = capacity
        self.chunk_lines = chunk_lines
        self.secret_globs = tuple(secret_globs)
        self._chunks: OrderedDict[tuple[str, int], Chunk] = OrderedDict()
        self.version = 0
        """Incremented whenever the ring's content changes."""

    def chunks(self, exclude_path: str | None = None) -> list[Chunk]:
        """Return the chunks, oldest first, leaving out ``exclude_path``'s own."""
        return [c for c in self._chunks.values() if c.path != exclude_path]

    def add_file(self, path: str, text: str, around_line: int | None = None) -> bool:
        """Take a chunk of ``text`` around ``around_line`` (default: the top)."""
        if not text.strip() or is_secret(path, self.secret_globs):
            return False
        lines = text.split("\n")
        center = around_line if around_line is not None else 0
        start = max(0, center - self.chunk_lines // 2)
        start -= start % max(1, self.chunk_lines // 4)
        piece = lines[start : start + self.chunk_lines]
        body = "\n".join(piece).rstrip() + "\n"
        if not body.strip():
            return False
        chunk = Chunk(path, body, frozenset(ln for ln in piece if ln.strip()))
        for key, old in list(self._chunks.items()):
            if old.text == chunk.text:
                return False  # already present: keep its place (and the cache)
            if _jaccard(old.lines, chunk.lines) > 0.9:
                del self._chunks[key]
        self._chunks[(path, start)] = chunk
        while len(self._chunks) > self.capacity:
            self._chunks.popitem(last=False)
        self.version += 1
        return True

    def remove_path(self, path: str) -> None:
        """Forget every chunk of ``path``."""
        for key in [k for k in self._chunks if k[0] == path]:
            del self._chunks[key]
            self.version += 1


def display_path(path: str, root: str | None) -> str:
    """Return ``path`` relative to ``root`` when inside it (for prompt headers)."""
    if root:
        try:
            rel = os.path.relpath(path, root)
            if not rel.startswith(".."):
                return PurePosixPath(rel.replace(os.sep, "/")).as_posix()
        except ValueError:
            pass
    return path
