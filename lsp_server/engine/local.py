"""The in-process engine: a llama.cpp context driven from the shared engine thread.

It accepts token prompts (completion lays out the model's own FIM tokens, see
:mod:`lsp_server.completion.planner`), keeps its KV cache between requests, and
never sends a prompt anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from lsp_server.core.errors import Cancelled, InvalidParams, OpenLlmError
from lsp_server.engine.base import (
    CancelToken,
    DeltaCallback,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    InfillRequest,
    ModelInfo,
    Priority,
)
from lsp_server.engine.chat_template import ChatRenderer
from lsp_server.engine.llama import LlamaContext, LlamaModel
from lsp_server.engine.worker import EngineWorker

log = logging.getLogger(__name__)


class LlamaVocabulary:
    """The :class:`~lsp_server.engine.base.Vocabulary` of a loaded model."""

    def __init__(self, model: LlamaModel, fim: dict[str, int]) -> None:
        self._model = model
        self._fim = dict(fim)

    @property
    def fim(self) -> dict[str, int]:
        """The FIM special tokens the vocabulary declares."""
        return self._fim

    def tokenize_code(self, text: str) -> list[int]:
        """Tokenize source text: no BOS, and control-token spellings stay plain text."""
        return self._model.tokenize(text, add_bos=False, special=False)

    def code_bos(self) -> int | None:
        """The BOS token to start a completion prompt with, unless the model adds none."""
        if self._model.meta("tokenizer.ggml.add_bos_token") == "false":
            return None
        return self._model.token_bos()

    def render(self, tokens: list[int]) -> str:
        """The text of ``tokens`` with control tokens spelled out."""
        pieces = b"".join(self._model.piece_special(t) for t in tokens)
        return pieces.decode("utf-8", "replace")


class LocalEngine:
    """Serve one role from a :class:`LlamaContext`; all native calls run on ``worker``."""

    backend = "local"
    accepts_tokens = True
    keeps_kv_cache = True
    in_process = True
    health_error: OpenLlmError | None = None  # nothing to reach: always serving

    def __init__(
        self, model: LlamaModel, context: LlamaContext, worker: EngineWorker, info: ModelInfo
    ) -> None:
        self.model = model
        self.context = context
        self.worker = worker
        self._info = info
        self._last_stats: GenerationStats | None = None
        self._template = model.chat_template()
        self._bos = model.detokenize([model.token_bos()]) if model.token_bos() >= 0 else ""
        # Bounded template rendering; message content tokenized as text (never as markup).
        self._chat = ChatRenderer(model, template=self._template, bos_token=self._bos,
                                  name=model.path.name)  # fmt: skip
        self._vocabulary = LlamaVocabulary(model, info.fim)

    @property
    def vocabulary(self) -> LlamaVocabulary:
        """The model's vocabulary (token prompts, FIM tokens)."""
        return self._vocabulary

    @property
    def info(self) -> ModelInfo:
        """Describe the loaded model."""
        return self._info

    @property
    def last_stats(self) -> GenerationStats | None:
        """Stats of the most recent generation (finished or cancelled)."""
        return self._last_stats

    async def generate(
        self, request: GenerationRequest, on_delta: DeltaCallback | None, cancel: CancelToken
    ) -> GenerationResult:
        """Run ``request`` on the engine thread, streaming deltas to ``on_delta`` on this loop."""
        if request.tokens is None and request.prompt is None:
            raise InvalidParams("a generation needs a prompt")
        loop = asyncio.get_running_loop()
        deliver: DeltaCallback | None = None
        if on_delta is not None:
            callback = on_delta

            def deliver(text: str) -> None:
                loop.call_soon_threadsafe(callback, text)

        stats = GenerationStats()

        def job() -> GenerationResult:
            cancel.raise_if_cancelled()
            tokens = request.tokens
            if tokens is None:
                assert request.prompt is not None
                tokens = self._chat.tokenize(
                    request.prompt, add_bos=request.add_bos, special=request.parse_special
                )

            def between() -> None:
                if request.evaluate_only:
                    # A warm-up shares its context with completions: give way, never nest.
                    if self.worker.has_pending_below(request.priority):
                        cancel.cancel("preempted")
                else:
                    # Jobs that may run here have a lower priority value, hence another role
                    # and another context (chat is preempted by completion, never the reverse).
                    self.worker.run_preempting(request.priority)

            if request.evaluate_only:
                start = time.perf_counter()
                self.context.evaluate_prompt(
                    tokens, cancel, stats, reuse_chunks=request.reuse_chunks, between_slices=between
                )
                stats.prompt_ms = (time.perf_counter() - start) * 1000
                stats.stop_reason = "warm"
                return GenerationResult("", stats)
            return self.context.generate(
                tokens,
                sampling=request.sampling,
                max_tokens=request.max_tokens,
                stop=request.stop,
                time_budget_s=request.time_budget_s,
                on_delta=deliver,
                cancel=cancel,
                stats=stats,
                reuse_chunks=request.reuse_chunks,
                between_tokens=between,
                stop_check=request.stop_check,
            )

        future = self.worker.submit(request.priority, job)
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.cancel("cancelled")
            future.cancel()
            self._last_stats = stats
            raise
        except Cancelled:
            self._last_stats = stats
            raise
        self._last_stats = result.stats
        return result

    async def tokenize(
        self, text: str, *, add_bos: bool = False, special: bool = True
    ) -> list[int]:
        """Tokenize ``text`` (pure vocabulary work, safe off the engine thread); a prompt
        :meth:`render_chat` made keeps its message content as plain text."""
        return self._chat.tokenize(text, add_bos=add_bos, special=special)

    async def render_chat(self, messages: list[dict[str, str]]) -> str:
        """Render messages through the model's chat template (or the ChatML fallback), off
        the event loop and bounded (see :mod:`lsp_server.engine.chat_template`)."""
        return await self._chat.render(messages)

    def needs_bos(self, prompt: str) -> bool:
        """Whether tokenizing a rendered ``prompt`` must add BOS (its template may have it)."""
        return not (self._bos and prompt.startswith(self._bos))

    async def chat(
        self,
        messages: list[dict[str, str]],
        request: GenerationRequest,
        on_delta: DeltaCallback | None,
        cancel: CancelToken,
    ) -> GenerationResult:
        """Render ``messages`` through the chat template and generate the answer."""
        prompt = await self.render_chat(messages)
        add_bos = self.needs_bos(prompt)
        return await self.generate(
            replace(request, prompt=prompt, tokens=None, add_bos=add_bos), on_delta, cancel
        )

    async def infill(self, request: InfillRequest, cancel: CancelToken) -> GenerationResult:
        """Complete code from the planned token prompt, ``request.tokens``."""
        if request.tokens is None:
            raise InvalidParams(
                "the local engine completes code from a token prompt: plan it with "
                "lsp_server.completion.planner"
            )
        generation = GenerationRequest(
            tokens=request.tokens,
            max_tokens=request.max_tokens,
            sampling=request.sampling,
            priority=request.priority,
            reuse_chunks=request.reuse_chunks,
            stop_check=request.stop_check,
        )
        return await self.generate(generation, None, cancel)

    async def completion_api(self) -> str:
        """Completion runs the planned token prompt: ``tokens``."""
        return "tokens"

    async def clear_cache(self) -> None:
        """Empty the KV cache (on the engine thread, ahead of queued chat work)."""
        await asyncio.wrap_future(self.worker.submit(Priority.COMPLETION, self.context.clear))

    def close(self) -> None:
        """Free the context (the shared model is freed by its owner)."""
        self.context.close()
