"""Code actions on a selection: what each asks the model, as plain text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lsp_server.chat.titles import fallback_title

SEVERITIES = {1: "error", 2: "warning", 3: "information", 4: "hint"}


@dataclass(frozen=True)
class ChatAction:
    """One code action that starts a chat about the selection."""

    id: str
    title: str
    kind: str
    question: str


ACTIONS: tuple[ChatAction, ...] = (
    ChatAction(
        "ask",
        "Ask Open LLM about the selection",
        "refactor.openLlm.ask",
        "What does this code do? Point out anything that looks wrong.",
    ),
    ChatAction(
        "explain",
        "Explain the selection (Open LLM)",
        "refactor.openLlm.explain",
        "Explain what this code does, step by step, in plain words.",
    ),
    ChatAction(
        "tests",
        "Write tests for the selection (Open LLM)",
        "refactor.openLlm.tests",
        "Write unit tests for this code. Cover the normal cases and the edge cases, using "
        "the test framework this project most likely uses.",
    ),
    ChatAction(
        "fix",
        "Fix the selection (Open LLM)",
        "quickfix.openLlm.fix",
        "Fix this code. Show the corrected code and say briefly what was wrong.",
    ),
)
ACTIONS_BY_ID = {a.id: a for a in ACTIONS}


def describe_diagnostics(diagnostics: Sequence[dict[str, Any]]) -> str:
    """Diagnostics as a short list for the prompt (1-based lines)."""
    lines = []
    for d in diagnostics:
        start = (d.get("range") or {}).get("start") or {}
        line = int(start.get("line", 0)) + 1
        severity = SEVERITIES.get(int(d.get("severity") or 1), "error")
        source = f" [{d['source']}]" if d.get("source") else ""
        code = f" ({d['code']})" if d.get("code") not in (None, "") else ""
        message = " ".join(str(d.get("message", "")).split())
        lines.append(f"- line {line}: {severity}{code}: {message}{source}")
    return "\n".join(lines)


def action_question(action: ChatAction, diagnostics: Sequence[dict[str, Any]] = ()) -> str:
    """The user message of an action (the selection goes along as an attachment)."""
    if action.id == "fix" and diagnostics:
        return (
            "Fix this code. These problems were reported in it:\n"
            + describe_diagnostics(diagnostics)
            + "\nShow the corrected code and say briefly what was wrong."
        )
    return action.question


def action_title(action: ChatAction, path: str, first_line: int, last_line: int) -> str:
    """A chat title such as "Explain fib.py:3-10"."""
    name = path.rsplit("/", 1)[-1]
    lines = str(first_line) if first_line == last_line else f"{first_line}-{last_line}"
    where = f"{name}:{lines}"
    verb = {"ask": "Ask about", "explain": "Explain", "tests": "Tests for", "fix": "Fix"}
    return fallback_title(f"{verb.get(action.id, action.id)} {where}", max_words=8)
