"""When to stop a completion and how to tidy it, from what surrounds the cursor.

- after the time budget, stop at the next newline;
- stop when a new line dedents below the cursor's block;
- stop when the output starts repeating the text after the cursor;
- in the middle of a line, stop at the end of the line;
- trim the overlap with the text after the cursor and trailing whitespace;
- never return an empty or whitespace-only suggestion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lsp_server.completion.context import CursorWindow


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


CLOSERS = ")]}>'\"`;,"


def is_mid_line(window: CursorWindow) -> bool:
    """Whether real text (not just auto-closed brackets) sits right of the cursor."""
    return bool(window.line_suffix.strip().strip(CLOSERS).strip())


def _first_nonblank(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line.strip()
    return ""


@dataclass
class StopRules:
    """The stop policy for one completion (call :meth:`check` after each token)."""

    window: CursorWindow
    time_budget_s: float | None = None
    max_lines: int = 32
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.perf_counter()
        self.block_indent = self.window.indent
        self.mid_line = is_mid_line(self.window)
        self.next_code_line = _first_nonblank(self.window.after)

    def check(self, text: str) -> int | None:
        """Return where to cut ``text`` to stop now, or None to continue."""
        if "\n" not in text:
            return None
        if self.mid_line:
            return text.index("\n")
        lines = text.split("\n")
        complete = lines[:-1]  # the last line may still be growing
        offset = len(lines[0]) + 1
        for line in complete[1:]:
            stripped = line.strip()
            if stripped and _indent(line) < self.block_indent:
                return offset - 1  # dedent: the block ended
            if stripped and self.next_code_line and stripped == self.next_code_line:
                return offset - 1  # repeating the code after the cursor
            offset += len(line) + 1
        if len(complete) >= self.max_lines:
            return sum(len(x) + 1 for x in complete) - 1
        if (
            self.time_budget_s is not None
            and time.perf_counter() - self.started > self.time_budget_s
        ):
            return len(text) - len(lines[-1]) - 1  # out of time: end at the last newline
        return None

    def as_callback(self) -> Callable[[str], int | None]:
        """Return :meth:`check` (for :class:`~lsp_server.engine.base.GenerationRequest`)."""
        return self.check


def clean(text: str, window: CursorWindow) -> str | None:
    """Tidy a raw suggestion; return None when nothing useful is left."""
    if is_mid_line(window):
        text = text.split("\n", 1)[0]
    else:
        nxt = _first_nonblank(window.after)
        if nxt:
            lines = text.split("\n")
            for i, line in enumerate(lines):
                if i > 0 and line.strip() == nxt:
                    text = "\n".join(lines[:i])
                    break
    suffix = window.line_suffix.rstrip()
    # Drop the end that the text right of the cursor already has (e.g. a closing bracket).
    for k in range(min(len(text.rstrip()), len(suffix)), 0, -1):
        if suffix[:k].strip() and text.rstrip().endswith(suffix[:k]):
            text = text.rstrip()[:-k]
            break
    text = text.rstrip()
    if window.line_prefix and not window.line_prefix.strip() and text.startswith("\n"):
        text = text.lstrip("\n")
    if not text.strip():
        return None
    return text


@dataclass(frozen=True)
class CachedSuggestion:
    """A suggestion and the text around it when it was made."""

    uri: str
    prefix: str
    suffix: str
    text: str


class ResultCache:
    """LRU of suggestions that also serves typing along a shown suggestion.

    If the user typed the first characters of a suggestion, the rest is returned
    without any inference.
    """

    def __init__(self, capacity: int = 250) -> None:
        self.capacity = capacity
        self._items: list[CachedSuggestion] = []
        self.hits = 0

    def put(self, uri: str, prefix: str, suffix: str, text: str) -> None:
        """Remember ``text`` suggested at ``prefix``|``suffix`` in ``uri``."""
        item = CachedSuggestion(uri, prefix, suffix, text)
        self._items = [
            i for i in self._items if (i.uri, i.prefix, i.suffix) != (uri, prefix, suffix)
        ]
        self._items.append(item)
        del self._items[: max(0, len(self._items) - self.capacity)]

    def get(self, uri: str, prefix: str, suffix: str) -> str | None:
        """Return the remaining suggestion for this position, if one is known."""
        for item in reversed(self._items):
            if item.uri != uri or item.suffix != suffix or not prefix.startswith(item.prefix):
                continue
            typed = prefix[len(item.prefix) :]
            if item.text.startswith(typed) and len(typed) < len(item.text):
                rest = item.text[len(typed) :]
                if rest.strip():
                    self.hits += 1
                    return rest
        return None

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()
