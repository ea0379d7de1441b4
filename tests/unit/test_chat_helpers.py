"""lsp_server.chat: thinking splitting, titles, attachments, history fitting, actions."""

from __future__ import annotations

import asyncio
import random

import pytest

from lsp_server.chat import (
    Attachment,
    ThinkingSplitter,
    answer_reserve,
    clean_title,
    fallback_title,
    fit_history,
    format_attachment,
    group_turns,
    history_messages,
    select_range,
    starts_in_thinking,
    user_prompt_text,
)
from lsp_server.chat.actions import ACTIONS_BY_ID, action_question, action_title
from lsp_server.core.errors import InvalidParams
from lsp_server.storage import Message, MessageStats

# --- thinking -----------------------------------------------------------------------------


def _stream(splitter: ThinkingSplitter, text: str, rng: random.Random) -> tuple[str, str]:
    answer, thinking = [], []
    i = 0
    while i < len(text):
        n = rng.randint(1, 5)
        a, t = splitter.feed(text[i : i + n])
        answer.append(a)
        thinking.append(t)
        i += n
    a, t = splitter.finish()
    answer.append(a)
    thinking.append(t)
    return "".join(answer), "".join(thinking)


@pytest.mark.parametrize("seed", range(20))
def test_thinking_is_split_whatever_the_chunking(seed: int) -> None:
    text = "<think>\nThe user wants x. Use </thin or not.\n</think>\n\nThe answer is 42."
    splitter = ThinkingSplitter()
    answer, thinking = _stream(splitter, text, random.Random(seed))
    assert answer == "The answer is 42." == splitter.answer
    assert thinking == "\nThe user wants x. Use </thin or not.\n" == splitter.thinking


@pytest.mark.parametrize("seed", range(10))
def test_plain_answers_pass_through(seed: int) -> None:
    text = "  Use <think> tags in XML like <thinking>this</thinking>."
    answer, thinking = _stream(ThinkingSplitter(), text, random.Random(seed))
    assert answer == text.lstrip()
    assert thinking == ""


def test_an_answer_starting_like_a_tag_is_released() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("<th") == ("", "")
    assert splitter.feed("ead> is HTML") == ("<thead> is HTML", "")


def test_unclosed_thinking_stays_thinking() -> None:
    splitter = ThinkingSplitter()
    splitter.feed("<think>still going </thi")
    assert splitter.in_thinking
    assert splitter.finish() == ("", "</thi")
    assert splitter.thinking == "still going </thi"
    assert splitter.answer == ""


def test_prompt_that_opened_thinking() -> None:
    close = starts_in_thinking("<|im_start|>assistant\n<think>\n")
    assert close == "</think>"
    assert starts_in_thinking("<|im_start|>assistant\n") is None
    splitter = ThinkingSplitter(open_close_tag=close)
    splitter.feed("hmm, x.</think>Yes.")
    assert (splitter.thinking, splitter.answer) == ("hmm, x.", "Yes.")


def test_other_tag_pairs() -> None:
    splitter = ThinkingSplitter()
    splitter.feed("<reasoning>because</reasoning>ok")
    assert (splitter.thinking, splitter.answer) == ("because", "ok")


# --- titles -------------------------------------------------------------------------------


def test_fallback_title_takes_the_first_words() -> None:
    assert fallback_title("How do I reverse a list in Python quickly and safely?") == (
        "How do I reverse a list…"
    )
    assert fallback_title("\n\n  **Fix** this bug\nmore") == "Fix this bug"
    assert fallback_title("   ") == "New chat"
    assert len(fallback_title("x" * 500)) <= 61


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"Reversing Lists in Python"', "Reversing Lists in Python"),
        ("Title: Sorting dicts.\nExtra text", "Sorting dicts"),
        ("## **Async IO basics**", "Async IO basics"),
        ("\n\n  Generators  ", "Generators"),
        ("!!", None),
        ("", None),
    ],
)
def test_clean_title(raw: str, expected: str | None) -> None:
    assert clean_title(raw) == expected


# --- attachments --------------------------------------------------------------------------

SOURCE = "def f(x):\n    return x + 1\n\n\nprint(f('😀'), 'é')\n"


def _rng(a: int, b: int, c: int, d: int) -> dict[str, dict[str, int]]:
    return {"start": {"line": a, "character": b}, "end": {"line": c, "character": d}}


def test_select_range_uses_utf16_columns() -> None:
    assert select_range(SOURCE, None) == SOURCE
    assert select_range(SOURCE, _rng(0, 0, 2, 0)) == "def f(x):\n    return x + 1\n"
    # '😀' is two UTF-16 code units: the quote after it is at character 11.
    assert select_range(SOURCE, _rng(4, 8, 4, 12)) == "'😀'"
    assert select_range(SOURCE, _rng(4, 15, 4, 18)) == "'é'"
    assert select_range(SOURCE, _rng(9, 0, 12, 0)) == ""


def test_attachment_prompt_text() -> None:
    att = Attachment.make("file:///w/src/fib.py", "src/fib.py", SOURCE, rng=_rng(0, 0, 2, 0))
    assert att.language == "python" and att.lines == (1, 2)
    text = format_attachment(att)
    assert text.startswith("File `src/fib.py`, lines 1-2:\n```python\ndef f(x):")
    assert "print" not in text
    stored = att.to_dict()
    assert stored["name"] == "fib.py" and stored["content"] == "def f(x):\n    return x + 1\n"
    prompt = user_prompt_text("What does it do?", [stored])
    assert prompt.endswith("```\n\nWhat does it do?") or prompt.endswith("```\nWhat does it do?")
    assert user_prompt_text("plain", None) == "plain"


def test_attachment_fences_and_limits() -> None:
    att = Attachment.make("file:///r.md", "r.md", "a\n```\nb\n" * 10, limit=12)
    assert att.truncated and len(att.content) == 12
    text = format_attachment(att)
    assert "````markdown" in text and "cut to the first 12 characters" in text


# --- history fitting ----------------------------------------------------------------------


def _msg(role: str, content: str, n: int) -> Message:
    return Message(
        id=f"m{n}",
        chat_id="c",
        parent_id=None,
        role=role,
        content=content,
        thinking="secret thoughts" if role == "assistant" else "",
        attachments=[],
        created_at=n,
        incomplete=False,
        stats=MessageStats() if role == "assistant" else None,
    )


async def _render(messages: list[dict[str, str]]) -> str:
    return "".join(f"<{m['role']}>{m['content']}" for m in messages)


async def _count(text: str) -> int:
    return len(text.split())


def _history(turns: int) -> list[Message]:
    out = []
    for i in range(turns):
        out.append(_msg("user", f"question {i} " + "word " * 10, 2 * i))
        out.append(_msg("assistant", f"answer {i} " + "word " * 10, 2 * i + 1))
    return out


def test_history_messages_leave_out_thinking_and_empty_answers() -> None:
    msgs = [_msg("user", "hi", 0), _msg("assistant", "", 1), _msg("assistant", "yo", 2)]
    assert history_messages(msgs) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]
    assert [len(t) for t in group_turns(history_messages(_history(3)))] == [2, 2, 2]


def test_everything_fits() -> None:
    plan = asyncio.run(
        fit_history(
            "sys",
            history_messages(_history(2)),
            {"role": "user", "content": "new"},
            render=_render,
            count=_count,
            context_length=1000,
            reserve=100,
        )
    )
    assert plan.truncation is None
    assert len(plan.messages) == 1 + 4 + 1
    assert "secret" not in plan.text


def test_oldest_turns_are_dropped_first() -> None:
    history = history_messages(_history(10))  # 12 words per message
    plan = asyncio.run(
        fit_history(
            "system prompt",
            history,
            {"role": "user", "content": "the new question"},
            render=_render,
            count=_count,
            context_length=100,
            reserve=20,
        )
    )
    assert plan.tokens <= 80
    assert plan.truncation is not None
    t = plan.truncation
    assert plan.messages[0] == {"role": "system", "content": "system prompt"}
    assert plan.messages[-1]["content"] == "the new question"
    # The fewest turns dropped: one more kept turn would not fit.
    kept = (len(plan.messages) - 2) // 2
    assert t.dropped_turns == 10 - kept and t.dropped_messages == 2 * t.dropped_turns
    assert plan.messages[1]["content"].startswith(f"question {t.dropped_turns} ")
    assert 80 - plan.tokens < 24
    assert "oldest" in t.notice() and "100-token" in t.notice()
    assert t.to_dict()["droppedTurns"] == t.dropped_turns


def test_a_message_too_long_for_the_context_is_refused() -> None:
    with pytest.raises(InvalidParams, match="too long"):
        asyncio.run(
            fit_history(
                "sys",
                history_messages(_history(2)),
                {"role": "user", "content": "word " * 200},
                render=_render,
                count=_count,
                context_length=100,
                reserve=20,
            )
        )


def test_answer_reserve() -> None:
    assert answer_reserve(16, 2048) == 16
    assert answer_reserve(1024, 2048) == 512
    assert answer_reserve(1024, 512) == 128


# --- code actions -------------------------------------------------------------------------


def test_action_texts() -> None:
    fix = ACTIONS_BY_ID["fix"]
    diagnostics = [
        {
            "range": _rng(2, 0, 2, 4),
            "severity": 1,
            "message": "undefined name 'y'",
            "source": "pyflakes",
            "code": "F821",
        }
    ]
    text = action_question(fix, diagnostics)
    assert "- line 3: error (F821): undefined name 'y' [pyflakes]" in text
    assert action_question(fix) == fix.question
    assert action_title(ACTIONS_BY_ID["explain"], "src/fib.py", 3, 10) == "Explain fib.py:3-10"
    assert action_title(ACTIONS_BY_ID["tests"], "a.py", 4, 4) == "Tests for a.py:4"
