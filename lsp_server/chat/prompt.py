"""Prompt assembly: system prompt + the active branch + the new message, fitted to the
model's context by dropping the oldest turns (never the system prompt or the new message).

:func:`fit_history` takes rendering and token counting as async callables (plain
Python, tested without a model); :func:`plan_prompt` passes the chat engine's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lsp_server.chat.attachments import user_prompt_text
from lsp_server.core.errors import InvalidParams
from lsp_server.engine.base import Engine
from lsp_server.storage import Message

PromptMessage = dict[str, str]
Render = Callable[[list[PromptMessage]], Awaitable[str]]
Count = Callable[[str], Awaitable[int]]


def answer_reserve(max_tokens: int, context_length: int) -> int:
    """Tokens kept free for the answer: ``maxTokens``, at most a quarter of the context."""
    return max(1, min(max_tokens, context_length // 4))


def history_messages(messages: Sequence[Message]) -> list[PromptMessage]:
    """Stored messages as prompt messages: user text with its attachments, answers
    without their thinking; empty answers (cancelled before any text) left out."""
    out: list[PromptMessage] = []
    for m in messages:
        if m.role == "user":
            out.append({"role": "user", "content": user_prompt_text(m.content, m.attachments)})
        elif m.role == "assistant" and m.content.strip():
            out.append({"role": "assistant", "content": m.content})
    return out


def group_turns(history: Sequence[PromptMessage]) -> list[list[PromptMessage]]:
    """Split history into turns: each user message with the answers that follow it."""
    turns: list[list[PromptMessage]] = []
    for message in history:
        if message["role"] == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


@dataclass
class Truncation:
    """What was left out of the prompt to fit the context."""

    dropped_turns: int
    dropped_messages: int
    kept_messages: int
    prompt_tokens: int
    budget_tokens: int
    context_length: int

    def notice(self) -> str:
        """One sentence for the user."""
        turns = "turn" if self.dropped_turns == 1 else "turns"
        msgs = "message" if self.dropped_messages == 1 else "messages"
        return (
            f"The {self.dropped_turns} oldest {turns} ({self.dropped_messages} {msgs}) "
            f"were left out of the prompt to fit the model's {self.context_length}-token "
            "context."
        )

    def to_dict(self) -> dict[str, Any]:
        """camelCase form, stored in the answer's stats and sent to clients."""
        return {
            "droppedTurns": self.dropped_turns,
            "droppedMessages": self.dropped_messages,
            "keptMessages": self.kept_messages,
            "promptTokens": self.prompt_tokens,
            "budgetTokens": self.budget_tokens,
            "contextLength": self.context_length,
            "notice": self.notice(),
        }


@dataclass
class PromptPlan:
    """The prompt to send: the messages rendered, the text, its size and any truncation."""

    messages: list[PromptMessage]
    text: str
    tokens: int
    budget_tokens: int
    reserve_tokens: int
    context_length: int
    truncation: Truncation | None = None


async def fit_history(
    system: str,
    history: Sequence[PromptMessage],
    new_message: PromptMessage,
    *,
    render: Render,
    count: Count,
    context_length: int,
    reserve: int,
) -> PromptPlan:
    """Render the prompt, dropping the fewest oldest turns so it fits ``context - reserve``.

    ``new_message`` (the user message to answer) is never dropped, nor is the system
    prompt; when they alone do not fit, InvalidParams says so.
    """
    budget = context_length - reserve
    head = [{"role": "system", "content": system}] if system.strip() else []
    tail = [new_message]
    turns = group_turns(history)

    async def build(dropped: int) -> tuple[list[PromptMessage], str, int]:
        kept = [m for turn in turns[dropped:] for m in turn]
        messages = head + kept + tail
        text = await render(messages)
        return messages, text, await count(text)

    messages, text, tokens = await build(0)
    if tokens <= budget:
        return PromptPlan(messages, text, tokens, budget, reserve, context_length)
    # Fewest turns to drop: the token count shrinks as turns go (binary search).
    low, high = 1, len(turns)
    best: tuple[int, list[PromptMessage], str, int] | None = None
    while low <= high:
        mid = (low + high) // 2
        m, t, n = await build(mid)
        if n <= budget:
            best = (mid, m, t, n)
            high = mid - 1
        else:
            low = mid + 1
    if best is None:
        if turns:
            messages, text, tokens = await build(len(turns))
        raise InvalidParams(
            f"The message is too long for the model's context: the system prompt and the "
            f"message take {tokens} tokens, but only {budget} of the {context_length} fit "
            f"(keeping {reserve} for the answer). Shorten the message or its attachments, "
            "or raise openLlm.engine.contextLength.",
            data={"promptTokens": tokens, "budgetTokens": budget, "contextLength": context_length},
        )
    dropped, messages, text, tokens = best
    dropped_messages = sum(len(turn) for turn in turns[:dropped])
    truncation = Truncation(
        dropped_turns=dropped,
        dropped_messages=dropped_messages,
        kept_messages=len(messages) - len(head),
        prompt_tokens=tokens,
        budget_tokens=budget,
        context_length=context_length,
    )
    return PromptPlan(messages, text, tokens, budget, reserve, context_length, truncation)


async def plan_prompt(
    engine: Engine,
    system: str,
    history: Sequence[Message],
    user_text: str,
    max_tokens: int,
    *,
    reserve: int | None = None,
) -> tuple[PromptPlan, bool]:
    """Render and fit a chat prompt with ``engine``; return it and whether to add BOS.

    ``reserve`` (tokens kept for the answer) defaults to :func:`answer_reserve`.
    """

    async def render(messages: list[PromptMessage]) -> str:
        return await engine.render_chat(messages)

    async def count(text: str) -> int:
        return len(await engine.tokenize(text, add_bos=engine.needs_bos(text), special=True))

    n_ctx = engine.info.context_length
    plan = await fit_history(
        system,
        history_messages(history),
        {"role": "user", "content": user_text},
        render=render,
        count=count,
        context_length=n_ctx,
        reserve=answer_reserve(max_tokens, n_ctx) if reserve is None else reserve,
    )
    return plan, engine.needs_bos(plan.text)


