"""Attachments: a file or a selection of it, added to a user message with its path.

An attachment is stored with the message as a plain dict (``Attachment.to_dict``) that
keeps the text it contributed, so the prompt of a past message can be rebuilt exactly
even after the file changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

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
