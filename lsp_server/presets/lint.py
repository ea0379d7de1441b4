"""Diagnostics and key completion for preset files edited in the editor.

Positions are zero-based lines and columns counted in Unicode code points (Python string
indices), as pygls' documents use them; convert to the client's encoding (UTF-16 by default)
with the workspace document's position codec before sending them.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from lsp_server.presets.models import Preset
from lsp_server.presets.safety import SafetyPolicy, workspace_refusal
from lsp_server.presets.schema import preset_json_schema

logger = logging.getLogger(__name__)

_WS = " \t\r\n"


class Severity(IntEnum):
    """Diagnostic severity, numbered as in the LSP specification."""

    ERROR = 1
    WARNING = 2
    INFORMATION = 3
    HINT = 4


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a preset file, with a zero-based, end-exclusive range."""

    line: int
    col: int
    end_line: int
    end_col: int
    message: str
    severity: Severity = Severity.ERROR
    code: str = "invalid-value"


@dataclass(frozen=True)
class KeyCompletion:
    """One completion item: a key valid at the cursor's nesting level, or a value."""

    label: str
    detail: str
    documentation: str = ""
    kind: Literal["key", "value"] = "key"
    insert_text: str = ""


# ---------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------


class _Lines:
    """Map string offsets to (line, column) and back; CR LF, LF and CR all end a line."""

    def __init__(self, text: str) -> None:
        self.text = text
        starts = [0]
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == "\r":
                if i + 1 < n and text[i + 1] == "\n":
                    i += 1
                starts.append(i + 1)
            elif ch == "\n":
                starts.append(i + 1)
            i += 1
        self.starts = starts

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo, offset - self.starts[lo]

    def offset(self, line: int, col: int) -> int:
        if line < 0:
            return 0
        if line >= len(self.starts):
            return len(self.text)
        start = self.starts[line]
        end = self.starts[line + 1] if line + 1 < len(self.starts) else len(self.text)
        line_text = self.text[start:end].rstrip("\r\n")
        return start + max(0, min(col, len(line_text)))

    def line_end(self, offset: int) -> int:
        line, _ = self.position(offset)
        end = self.starts[line + 1] if line + 1 < len(self.starts) else len(self.text)
        while end > self.starts[line] and self.text[end - 1] in "\r\n":
            end -= 1
        return end


# ---------------------------------------------------------------------------
# A position-tracking parse of (already validated) JSON text
# ---------------------------------------------------------------------------


@dataclass
class _Node:
    kind: str
    start: int
    end: int
    members: list[_Member] = field(default_factory=list)
    items: list[_Node] = field(default_factory=list)


@dataclass
class _Member:
    key: str
    key_start: int
    key_end: int
    value: _Node


class _Parser:
    """Recursive-descent JSON parser that records the source span of every key and value.

    Only run on text that :func:`json.loads` accepted, so it does not report errors.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def parse(self) -> _Node:
        self._skip()
        return self._value()

    def _value(self) -> _Node:
        self._skip()
        ch = self.text[self.pos]
        if ch == "{":
            return self._object()
        if ch == "[":
            return self._array()
        if ch == '"':
            start = self.pos
            self._string()
            return _Node("string", start, self.pos)
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _WS + ",]}":
            self.pos += 1
        return _Node("scalar", start, self.pos)

    def _string(self) -> str:
        start = self.pos
        self.pos += 1
        while self.text[self.pos] != '"':
            self.pos += 2 if self.text[self.pos] == "\\" else 1
        self.pos += 1
        decoded: str = json.loads(self.text[start : self.pos])
        return decoded

    def _object(self) -> _Node:
        node = _Node("object", self.pos, self.pos)
        self.pos += 1
        self._skip()
        if self.text[self.pos] == "}":
            self.pos += 1
            node.end = self.pos
            return node
        while True:
            self._skip()
            key_start = self.pos
            key = self._string()
            key_end = self.pos
            self._skip()
            self.pos += 1  # ':'
            value = self._value()
            node.members.append(_Member(key, key_start, key_end, value))
            self._skip()
            if self.text[self.pos] == ",":
                self.pos += 1
                continue
            self.pos += 1  # '}'
            node.end = self.pos
            return node

    def _array(self) -> _Node:
        node = _Node("array", self.pos, self.pos)
        self.pos += 1
        self._skip()
        if self.text[self.pos] == "]":
            self.pos += 1
            node.end = self.pos
            return node
        while True:
            node.items.append(self._value())
            self._skip()
            if self.text[self.pos] == ",":
                self.pos += 1
                continue
            self.pos += 1  # ']'
            node.end = self.pos
            return node


def _member(node: _Node, key: str) -> _Member | None:
    found = None
    for member in node.members:
        if member.key == key:
            found = member  # the last duplicate wins, as in json.loads
    return found


# ---------------------------------------------------------------------------
# Schema helpers
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return preset_json_schema()


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` and pick the non-null branch of ``anyOf`` (optional fields)."""
    root = _schema()
    seen = 0
    while seen < 10:
        seen += 1
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node = {
                **root["$defs"][ref.rsplit("/", 1)[1]],
                **{k: v for k, v in node.items() if k != "$ref"},
            }
            continue
        any_of = node.get("anyOf")
        if isinstance(any_of, list):
            options = [o for o in any_of if o.get("type") != "null"]
            if len(options) == 1:
                merged = {k: v for k, v in node.items() if k != "anyOf"}
                merged.update(options[0])
                merged["nullable"] = True
                node = merged
                continue
        break
    return node


def _schema_at(path: list[str]) -> dict[str, Any] | None:
    """Return the (dereferenced) schema of the object at ``path``, or None if unknown."""
    node = _deref(_schema())
    for key in path:
        props = node.get("properties")
        if not isinstance(props, dict) or key not in props:
            return None
        node = _deref(props[key])
    return node


def _type_summary(prop: dict[str, Any]) -> str:
    node = _deref(prop)
    if "const" in node:
        kind = json.dumps(node["const"])
    elif "enum" in node:
        kind = " | ".join(json.dumps(v) for v in node["enum"])
    else:
        kind = str(node.get("type", "object" if "properties" in node else "value"))
        if kind == "array":
            item_type = node.get("items", {}).get("type", "value")
            kind = f"array of {item_type}s"
    lo, hi = node.get("minimum"), node.get("maximum")
    if lo is not None and hi is not None:
        kind += f" {lo}..{hi}"
    elif lo is not None:
        kind += f" >= {lo}"
    if node.get("nullable"):
        kind += " or null"
    if "default" in node and not isinstance(node["default"], (dict, list)):
        kind += f" (default {json.dumps(node['default'])})"
    return kind


# ---------------------------------------------------------------------------
# Linting
# ---------------------------------------------------------------------------


def _friendly(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    got = error.get("input")
    got_text = json.dumps(got) if isinstance(got, (int, float, str, bool)) or got is None else ""
    suffix = f" (got {got_text})" if got_text and len(got_text) <= 40 else ""
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}{suffix}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}{suffix}"
    if kind in ("float_type", "finite_number"):
        return f"expected a number{suffix}"
    if kind == "int_type":
        return f"expected a whole number{suffix}"
    if kind == "string_type":
        return f"expected a string{suffix}"
    if kind in ("tuple_type", "list_type"):
        return f"expected an array{suffix}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected an object{suffix}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}{suffix}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else str(error["msg"])
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} entries allowed"
    if kind == "string_too_long":
        return f"too long: at most {ctx.get('max_length')} characters"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _loc_text(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _range(
    lines: _Lines, start: int, end: int, message: str, severity: Severity, code: str
) -> Diagnostic:
    line, col = lines.position(start)
    end_line, end_col = lines.position(max(end, start))
    return Diagnostic(line, col, end_line, end_col, message, severity, code)


def _validation_diagnostics(lines: _Lines, root: _Node, error: ValidationError) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for err in error.errors():
        loc = tuple(err.get("loc", ()))
        kind = str(err.get("type", ""))
        parents: list[str] = []
        node = root
        member: _Member | None = None
        target: tuple[int, int] | None = None
        walked = 0
        for item in loc:
            if isinstance(item, str) and node.kind == "object":
                found = _member(node, item)
                if found is None:
                    break
                member = found
                if kind == "extra_forbidden" and walked == len(loc) - 1:
                    target = (found.key_start, found.key_end)
                node = found.value
                parents.append(item)
            elif isinstance(item, int) and node.kind == "array" and item < len(node.items):
                member = None
                node = node.items[item]
            else:
                break
            walked += 1
        where = _loc_text(loc)
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            schema = _schema_at([str(p) for p in loc[:-1] if isinstance(p, str)])
            valid = sorted((schema or {}).get("properties", {}))
            hint = difflib.get_close_matches(key, valid, n=1)
            message = f'unknown key "{key}"'
            if hint:
                message += f'; did you mean "{hint[0]}"?'
            elif valid:
                message += f"; valid keys here: {', '.join(valid)}"
            span = target or (node.start, node.end)
            out.append(_range(lines, *span, message, Severity.ERROR, "unknown-key"))
            continue
        if kind == "missing":
            key = str(loc[-1]) if loc else ""
            if member is not None and walked == len(loc) - 1:
                span = (member.key_start, member.key_end)
            else:
                span = (node.start, node.start + 1)
            out.append(
                _range(lines, *span, f'missing required key "{key}"', Severity.ERROR, "missing-key")
            )
            continue
        message = f"{where}: {_friendly(err)}" if where else _friendly(err)
        out.append(_range(lines, node.start, node.end, message, Severity.ERROR, "invalid-value"))
    return out


def _duplicate_keys(lines: _Lines, node: _Node, path: str = "") -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if node.kind == "object":
        last: dict[str, _Member] = {}
        for member in node.members:
            if member.key in last:
                earlier = last[member.key]
                out.append(
                    _range(
                        lines,
                        earlier.key_start,
                        earlier.key_end,
                        f'duplicate key "{path}{member.key}"; the last one wins',
                        Severity.WARNING,
                        "duplicate-key",
                    )
                )
            last[member.key] = member
        for member in node.members:
            out.extend(_duplicate_keys(lines, member.value, f"{path}{member.key}."))
    elif node.kind == "array":
        for item in node.items:
            out.extend(_duplicate_keys(lines, item, path))
    return out


def lint_preset_text(
    text: str, *, workspace_folder: Path | None = None, policy: SafetyPolicy | None = None
) -> list[Diagnostic]:
    """Check the text of a preset file and say where each problem is.

    Covers invalid JSON (at the parser's error position), unknown keys (on the key, with a
    "did you mean" hint), missing keys, wrong types and out-of-range values (on the value),
    duplicate keys (warning) and, when ``workspace_folder`` is given, the workspace safety
    rules (on the ``model`` value).

    :param text: the file's full text.
    :param workspace_folder: the folder holding ``.openllm/presets``; enables safety checks.
    :param policy: the user's safety settings (default: nothing extra allowed).
    :returns: diagnostics sorted by position; empty when the preset is valid.
    """
    lines = _Lines(text)
    if not text.strip():
        return [
            _range(
                lines,
                0,
                0,
                "empty file: expected a JSON object with a preset",
                Severity.ERROR,
                "invalid-json",
            )
        ]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        end = lines.line_end(exc.pos)
        if end <= exc.pos:
            end = min(exc.pos + 1, len(text))
        return [
            _range(lines, exc.pos, end, f"invalid JSON: {exc.msg}", Severity.ERROR, "invalid-json")
        ]
    root = _Parser(text).parse()
    if not isinstance(data, dict):
        return [
            _range(
                lines,
                root.start,
                root.end,
                "a preset file must contain a JSON object",
                Severity.ERROR,
                "invalid-value",
            )
        ]
    diagnostics = _duplicate_keys(lines, root)
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        diagnostics.extend(_validation_diagnostics(lines, root, exc))
    else:
        if workspace_folder is not None:
            reason = workspace_refusal(preset, workspace_folder, policy or SafetyPolicy())
            if reason is not None:
                model = _member(root, "model")
                span = (model.value.start, model.value.end) if model else (0, 1)
                diagnostics.append(_range(lines, *span, reason, Severity.ERROR, "refused"))
    return sorted(diagnostics, key=lambda d: (d.line, d.col))


# ---------------------------------------------------------------------------
# Completion
# ---------------------------------------------------------------------------


@dataclass
class _Frame:
    kind: str  # "object" | "array"
    key_in_parent: str | None
    start: int
    state: str = "key"  # object: key | colon | value | comma; array: value | comma
    current_key: str | None = None
    keys: set[str] = field(default_factory=set)


@dataclass
class _Context:
    frames: list[_Frame]
    in_string: bool
    string_text: str
    scalar_prefix: str


def _scan(text: str, stop: int, registry: dict[int, set[str]] | None = None) -> _Context:
    """Tolerantly scan ``text[:stop]`` and describe where the cursor is.

    ``registry`` (when given) receives the keys of every object, by the object's start offset.
    """
    frames: list[_Frame] = []
    i = 0
    scalar = ""
    while i < stop:
        ch = text[i]
        frame = frames[-1] if frames else None
        if ch == '"':
            j = i + 1
            buf: list[str] = []
            while j < len(text) and text[j] != '"' and text[j] not in "\r\n":
                if text[j] == "\\" and j + 1 < len(text):
                    buf.append(text[j : j + 2])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            closed = j < len(text) and text[j] == '"'
            if stop <= j:
                return _Context(frames, True, text[i + 1 : stop], "")
            raw = "".join(buf)
            try:
                value = json.loads(f'"{raw}"')
            except json.JSONDecodeError:
                value = raw
            if frame is not None and frame.kind == "object" and frame.state == "key":
                frame.current_key = str(value)
                frame.keys.add(str(value))
                frame.state = "colon"
            elif frame is not None:
                frame.state = "comma"
            i = j + 1 if closed else j
            scalar = ""
            continue
        if ch in "{[":
            parent_key = None
            if frame is not None and frame.kind == "object" and frame.state == "value":
                parent_key = frame.current_key
            elif frame is not None and frame.kind == "array":
                parent_key = "[]"
            frames.append(
                _Frame(
                    "object" if ch == "{" else "array",
                    parent_key,
                    i,
                    "key" if ch == "{" else "value",
                )
            )
            if registry is not None:
                registry[i] = frames[-1].keys
            scalar = ""
        elif ch in "}]":
            if frames:
                frames.pop()
            if frames:
                frames[-1].state = "comma"
            scalar = ""
        elif ch == ":":
            if frame is not None and frame.kind == "object":
                frame.state = "value"
            scalar = ""
        elif ch == ",":
            if frame is not None:
                frame.state = "key" if frame.kind == "object" else "value"
            scalar = ""
        elif ch in _WS:
            if scalar and frame is not None:
                frame.state = "comma"
            scalar = ""
        else:
            scalar += ch
        i += 1
    return _Context(frames, False, "", scalar)


def _value_items(prop: dict[str, Any]) -> list[KeyCompletion]:
    node = _deref(prop)
    values: list[Any] = []
    if "const" in node:
        values.append(node["const"])
    values.extend(node.get("enum", []))
    if node.get("type") == "boolean":
        values.extend([True, False])
    if node.get("nullable"):
        values.append(None)
    doc = str(node.get("description", ""))
    return [
        KeyCompletion(json.dumps(v), _type_summary(prop), doc, "value", json.dumps(v))
        for v in values
    ]


def complete_preset_keys(text: str, line: int, col: int) -> list[KeyCompletion]:
    """Offer the keys valid at the cursor's nesting level, or enum values after a key.

    Works on incomplete text (the usual case while typing). Keys already present in the
    enclosing object are left out.

    :param text: the preset file's text.
    :param line: zero-based cursor line.
    :param col: zero-based cursor column (code points).
    :returns: completion items; empty when nothing fits (e.g. inside a free-text value).
    """
    lines = _Lines(text)
    ctx = _scan(text, lines.offset(line, col))
    if not ctx.frames:
        return []
    frame = ctx.frames[-1]
    path = [f.key_in_parent for f in ctx.frames[1:]]
    if any(p is None or p == "[]" for p in path) or frame.kind != "object":
        return []
    schema = _schema_at([p for p in path if p is not None])
    if schema is None:
        return []
    props: dict[str, Any] = schema.get("properties", {})
    if frame.state == "key":
        prefix = ctx.string_text if ctx.in_string else ""
        registry: dict[int, set[str]] = {}
        _scan(text, len(text), registry)  # keys written after the cursor count too
        present = (frame.keys | registry.get(frame.start, set())) - {prefix}
        items = []
        for key, prop in props.items():
            if key in present or not key.startswith(prefix):
                continue
            insert = key if ctx.in_string else f'"{key}": '
            items.append(
                KeyCompletion(
                    key,
                    _type_summary(prop),
                    str(_deref(prop).get("description", "")),
                    "key",
                    insert,
                )
            )
        return items
    if frame.state == "value" and not ctx.in_string and frame.current_key in props:
        items = _value_items(props[str(frame.current_key)])
        return [item for item in items if item.label.startswith(ctx.scalar_prefix)]
    return []
