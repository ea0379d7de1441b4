"""The JSON bodies the remote engine POSTs, one builder per endpoint.

``/v1/chat/completions`` and ``/v1/completions`` take OpenAI's streaming body
(:func:`stream_body`); llama-server's ``/infill`` takes its own (:func:`infill_body`); a
completion without ``/infill`` sends the prefix-only text prompt the completion planner
built (``InfillRequest.prompt``), with ``suffix`` when the server takes it
(:func:`completion_body`).
Sampling settings go under the names these servers share (:func:`sampling`).
"""

from __future__ import annotations

from typing import Any

from lsp_server.engine.base import GenerationRequest, InfillRequest, SamplingParams


def sampling(s: SamplingParams) -> dict[str, Any]:
    """The sampling fields of a body; those at their neutral value are left out."""
    out: dict[str, Any] = {"temperature": s.temperature, "top_p": s.top_p}
    if s.top_k > 0:
        out["top_k"] = s.top_k
    if s.min_p > 0:
        out["min_p"] = s.min_p
    if s.repeat_penalty != 1.0:
        out["repeat_penalty"] = s.repeat_penalty
    if s.presence_penalty:
        out["presence_penalty"] = s.presence_penalty
    if s.frequency_penalty:
        out["frequency_penalty"] = s.frequency_penalty
    if s.seed is not None and s.seed >= 0:
        out["seed"] = s.seed
    return out


def stream_body(request: GenerationRequest, **payload: Any) -> dict[str, Any]:
    """A streaming OpenAI-style body: ``payload`` plus limits, sampling and stop strings."""
    body: dict[str, Any] = {
        **payload,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_tokens,
        **sampling(request.sampling),
    }
    if request.stop:
        body["stop"] = list(request.stop)
    return body


def infill_body(request: InfillRequest) -> dict[str, Any]:
    """llama-server's ``/infill``: the code around the cursor and other files, as text."""
    return {
        "input_prefix": request.before,
        "prompt": request.typed,
        "input_suffix": request.suffix,
        "input_extra": [{"filename": p, "text": t} for p, t in request.extra],
        "n_predict": request.max_tokens,
        "stream": True,
        "cache_prompt": True,
        **sampling(request.sampling),
    }


def completion_body(request: InfillRequest, *, suffix: bool) -> dict[str, Any]:
    """``/v1/completions`` for a completion at a cursor (``suffix``: the server takes one)."""
    body: dict[str, Any] = {
        "prompt": request.prompt or request.before + request.typed,
        "max_tokens": request.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        **sampling(request.sampling),
    }
    if suffix:
        body["suffix"] = request.suffix
    return body
