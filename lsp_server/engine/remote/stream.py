"""What one streamed answer received, and what it cost.

A :class:`Stream` collects the pieces of text, the finish reason and the server's usage and
timings as events arrive. Each API has its reader of one event's JSON
(:func:`chat_piece`, :func:`completion_piece`, :func:`infill_piece`);
:func:`stop_reason` and :func:`stats` turn the stream into the engine's stats, from the
server's numbers where it sends them and measured here otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lsp_server.engine.base import GenerationStats


@dataclass
class Stream:
    """What one streamed request received so far (kept when it is cut or cancelled)."""

    t0: float
    parts: list[str] = field(default_factory=list)
    chunks: int = 0
    t_headers: float = 0.0
    t_first: float = 0.0
    t_last: float = 0.0
    finish: str | None = None
    done: bool = False
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    reason: str | None = None
    """Set when this side stopped the stream (``stop``, ``time``)."""
    timed_out: bool = False
    thinking: bool = False

    def text(self) -> str:
        """The text received so far."""
        return "".join(self.parts)


Extract = Callable[[dict[str, Any], Stream], str]
"""Take one event's payload: return its text, note finish/usage/timings on the stream."""


def _first_choice(payload: dict[str, Any]) -> dict[str, Any]:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _common(payload: dict[str, Any], st: Stream) -> dict[str, Any]:
    """Note usage and timings; return the first choice, noting its finish reason."""
    if isinstance(payload.get("usage"), dict):
        st.usage = payload["usage"]
    if isinstance(payload.get("timings"), dict):
        st.timings = payload["timings"]
    choice = _first_choice(payload)
    if choice.get("finish_reason"):
        st.finish = str(choice["finish_reason"])
    return choice


def chat_piece(payload: dict[str, Any], st: Stream) -> str:
    """An event of ``/v1/chat/completions``: its ``delta`` (reasoning as a ``<think>`` section)."""
    choice = _common(payload, st)
    delta = choice.get("delta") or choice.get("message") or {}
    if not isinstance(delta, dict):
        return ""
    text = ""
    # Reasoning models on llama-server/vLLM send thinking apart: keep it as a <think> section.
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        text += ("" if st.thinking else "<think>") + reasoning
        st.thinking = True
    content = delta.get("content")
    if isinstance(content, str) and content:
        if st.thinking:
            text += "</think>"
            st.thinking = False
        text += content
    return text


def completion_piece(payload: dict[str, Any], st: Stream) -> str:
    """An event of ``/v1/completions``: its choice's ``text``."""
    text = _common(payload, st).get("text")
    return text if isinstance(text, str) else ""


def infill_piece(payload: dict[str, Any], st: Stream) -> str:
    """llama-server's native stream (``/infill``): ``content``, then ``stop: true``."""
    _common(payload, st)
    if payload.get("stop"):
        stop_type = payload.get("stop_type")
        st.finish = "length" if stop_type == "limit" else "stop"
        if payload.get("tokens_predicted") is not None:
            st.usage = {
                "completion_tokens": payload.get("tokens_predicted"),
                "prompt_tokens": payload.get("tokens_evaluated"),
            }
        st.done = True
    text = payload.get("content")
    return text if isinstance(text, str) else ""


def count(value: Any) -> int | None:
    """``value`` as a count (a non-negative number), else None."""
    return int(value) if isinstance(value, (int, float)) and value >= 0 else None


def stop_reason(st: Stream, cancelled: bool = False) -> str:
    """Why the stream ended, in the engine's words (``eos``, ``length``, ``stop``, ...)."""
    if cancelled:
        return "cancelled"
    if st.reason is not None:
        return st.reason
    if st.finish == "length":
        return "length"
    if st.finish in ("stop", "eos", "end_turn"):
        return "eos"
    return st.finish or "eos"


def stats(st: Stream, reason: str) -> GenerationStats:
    """Stats of a stream: the server's usage/timings where present, else measured here."""
    out = GenerationStats(stop_reason=reason)
    usage = st.usage or {}
    timings = st.timings or {}
    prompt = count(usage.get("prompt_tokens"))
    cached = count(timings.get("cache_n"))
    details = usage.get("prompt_tokens_details")
    if cached is None and isinstance(details, dict):
        cached = count(details.get("cached_tokens"))
    evaluated = count(timings.get("prompt_n"))
    if prompt is None and evaluated is not None:
        prompt = evaluated + (cached or 0)
    out.prompt_tokens = prompt or 0
    out.reused_tokens = cached or 0
    out.evaluated_tokens = (
        evaluated if evaluated is not None else max(0, out.prompt_tokens - out.reused_tokens)
    )
    generated = count(usage.get("completion_tokens"))
    if generated is None:
        generated = count(timings.get("predicted_n"))
    if generated is None or reason in ("stop", "time", "cancelled", "error"):
        generated = st.chunks if generated is None else min(generated, max(st.chunks, 0))
    out.generated_tokens = generated
    if st.t_first:
        out.first_token_ms = (st.t_first - st.t0) * 1000
        out.generation_ms = (st.t_last - st.t_first) * 1000
    prompt_ms = timings.get("prompt_ms")
    out.prompt_ms = float(prompt_ms) if isinstance(prompt_ms, (int, float)) else out.first_token_ms
    # Measured where the editor sees it: pieces after the first over the time they took.
    if st.chunks > 1 and st.t_last > st.t_first:
        per_chunk = max(1.0, generated / st.chunks) if generated else 1.0
        out.tokens_per_s = (st.chunks - 1) * per_chunk / (st.t_last - st.t_first)
    return out
