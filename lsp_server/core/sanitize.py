"""The one sanitizer for text the editor shows: messages, logs, progress and status.

Editors render some markup in what a server sends them: VS Code turns
``[label](command:...)`` in a notification into a link that runs a command when
clicked, and Vim's statusline interprets ``%``. Much of what the server reports comes
from places a repository controls (a settings value, a model path, a GGUF's
``general.name``, a README's license line), so every string bound for
``window/showMessage``, ``window/showMessageRequest``, ``window/logMessage``, progress
titles and status text goes through :func:`clean_text`: square brackets become
parentheses (no ``[label](target)`` link can survive), newlines and other control or
bidirectional-override characters become spaces or `` | ``, and the length is capped.

Values a workspace controls are better not echoed at all: :func:`describe_value` and
:func:`describe_key` say what they are (``a string of 41 characters``) instead. Links
the server opens must be ``https:`` (:func:`safe_url`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOG_LIMIT",
    "MESSAGE_LIMIT",
    "STATUS_TEXT_KEYS",
    "clean_status",
    "clean_text",
    "describe_key",
    "describe_value",
    "safe_url",
]

MESSAGE_LIMIT = 1000
"""Characters kept of a message shown to the user (showMessage, status text)."""
LOG_LIMIT = 8000
"""Characters kept of one log line (logMessage): a traceback fits."""

_NEWLINES = re.compile(r"[ \t]*(?:\r\n|[\r\n\u2028\u2029\x0b\x0c\x85])[ \t]*")
# C0/C1 controls, zero-width and bidirectional controls (Trojan Source), BOM.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
_BRACKETS = str.maketrans({"[": "(", "]": ")"})
_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

STATUS_TEXT_KEYS = frozenset({"message", "name", "notice", "title", "settingsProblems", "label"})
"""Keys of ``openLlm/status`` whose string values are text an editor shows."""


def clean_text(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """Return ``text`` safe to show in an editor: no link markup, one line, at most ``limit``.

    ``[``/``]`` become ``(``/``)``, line breaks become `` | ``, tabs a space, and invisible
    or bidirectional control characters are dropped. Longer text is cut with ``…``.
    """
    value = str(text)
    if len(value) > 4 * limit:  # bound the work on hostile input before any regex
        value = value[: 4 * limit]
    value = _NEWLINES.sub(" | ", value)
    value = _INVISIBLE.sub("", value).replace("\t", " ").translate(_BRACKETS)
    if len(value) > limit:
        value = value[: max(0, limit - 1)] + "…"
    return value


def describe_value(value: Any) -> str:
    """Say what ``value`` is without echoing text a workspace may control.

    Numbers, booleans and null are short and harmless, so they are shown; strings, lists
    and objects are described by type and size (``a string of 41 characters``).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        n = len(value)
        return "an empty string" if n == 0 else f"a string of {n} character{'s' * (n != 1)}"
    if isinstance(value, (list, tuple)):
        n = len(value)
        return "an empty list" if n == 0 else f"a list of {n} item{'s' * (n != 1)}"
    if isinstance(value, dict):
        n = len(value)
        return "an empty object" if n == 0 else f"an object with {n} key{'s' * (n != 1)}"
    return f"a value of type {type(value).__name__}"


def describe_key(key: object) -> str:
    """A settings key as it may be shown: itself when it is a plain identifier, else a
    description (a workspace can send any text as a key)."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return key
    return f"<{describe_value(key)}>"


def safe_url(url: object) -> str | None:
    """``url`` when it is an ``https:`` URL with a host and nothing odd in it, else None.

    Only such links are offered to the user (``window/showDocument``, messages): a
    ``command:``, ``file:``, ``javascript:`` or ``vscode:`` link is dropped.
    """
    if not isinstance(url, str) or len(url) > 2048:
        return None
    text = url.strip()
    if not text or _INVISIBLE.search(text) or any(c.isspace() for c in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return text


def clean_status(value: Any, *, keys: Iterable[str] = STATUS_TEXT_KEYS) -> Any:
    """A copy of a status object with :func:`clean_text` applied to its text fields.

    Strings under ``keys`` (at any depth, including lists of strings such as
    ``settingsProblems``) are cleaned; identifiers, paths and numbers are left alone.
    """
    wanted = frozenset(keys)

    def walk(node: Any, text: bool) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k in wanted) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, text) for v in node]
        if text and isinstance(node, str):
            return clean_text(node)
        return node

    return walk(value, False)
