"""``openLlm/generate``: stream a raw generation (or a chat turn) from the chat model.

Deltas go out as ``openLlm/generateDelta`` notifications tagged with the request's
``requestId``; the response carries the whole text and the stats. ``$/cancelRequest``
or ``openLlm/cancel`` stop it between tokens.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from lsp_server.core.errors import Cancelled
from lsp_server.engine.base import (
    CancelToken,
    GenerationRequest,
    GenerationResult,
    Priority,
    SamplingParams,
)
from lsp_server.protocol import methods
from lsp_server.protocol.server import OpenLlmServer, Params, custom_request


class Message(BaseModel):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


class GenerateParams(Params):
    """Params of ``openLlm/generate``: a ``prompt`` or ``messages``, and sampling."""

    prompt: str | None = None
    messages: list[Message] | None = None
    request_id: str | None = None
    max_tokens: int = Field(128, ge=1, le=32768)
    temperature: float = Field(0.7, ge=0, le=2)
    top_k: int = Field(40, ge=0)
    top_p: float = Field(0.95, ge=0, le=1)
    min_p: float = Field(0.05, ge=0, le=1)
    repeat_penalty: float = Field(1.0, ge=0.5, le=2)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_input(self) -> GenerateParams:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        if self.prompt is not None and not self.prompt:
            raise ValueError("prompt is empty")
        if self.messages is not None and not self.messages:
            raise ValueError("messages is empty")
        return self


class CancelParams(Params):
    """Params of ``openLlm/cancel``."""

    request_id: str


def register(ls: OpenLlmServer) -> None:
    """Register ``openLlm/generate`` and ``openLlm/cancel``."""

    @custom_request(ls, methods.GENERATE, GenerateParams)
    async def on_generate(ls: OpenLlmServer, p: GenerateParams) -> dict[str, Any]:
        engine = await ls.manager().engine("chat")
        request_id = p.request_id or str(ls.protocol.msg_id or uuid.uuid4())
        messages = [m.model_dump() for m in p.messages] if p.messages is not None else None
        prompt = p.prompt
        seed = (
            p.seed if p.seed is not None else (ls.settings.seed if ls.settings.seed >= 0 else None)
        )
        request = GenerationRequest(
            prompt=prompt,
            max_tokens=p.max_tokens,
            stop=p.stop,
            sampling=SamplingParams(
                temperature=p.temperature,
                top_k=p.top_k,
                top_p=p.top_p,
                min_p=p.min_p,
                repeat_penalty=p.repeat_penalty,
                seed=seed,
            ),
            priority=Priority.CHAT,
        )
        cancel = CancelToken()
        ls.streams[request_id] = cancel.cancel

        def on_delta(text: str) -> None:
            ls.notify(methods.GENERATE_DELTA, {"requestId": request_id, "delta": text})

        try:
            if messages is not None:  # rendered by the engine (or the remote server)
                result = await engine.chat(messages, request, on_delta, cancel)
            else:
                result = await engine.generate(request, on_delta, cancel)
        except Cancelled as exc:
            partial = exc.data.get("partial")
            if not isinstance(partial, GenerationResult):
                raise
            result = partial  # stopped by openLlm/cancel: answer with what was generated
        finally:
            ls.streams.pop(request_id, None)
        ls.manager()._emit()
        return {"requestId": request_id, "text": result.text, "stats": result.stats.to_dict()}

    @custom_request(ls, methods.CANCEL, CancelParams)
    async def on_cancel(ls: OpenLlmServer, p: CancelParams) -> dict[str, Any]:
        stop = ls.streams.get(p.request_id)
        if stop is not None:
            stop()
        return {"cancelled": stop is not None}
