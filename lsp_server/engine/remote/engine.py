"""RemoteEngine: one role served by a team's OpenAI-compatible server, streamed over HTTP.

Chat goes to ``/v1/chat/completions`` with the messages (the server applies its template);
completion to the endpoint :mod:`~lsp_server.engine.remote.detect` found; every answer is
read as server-sent events (:mod:`~lsp_server.engine.remote.sse`) into a
:class:`~lsp_server.engine.remote.stream.Stream`. Cancelling the
:class:`~lsp_server.engine.base.CancelToken` closes the HTTP stream at once (the server sees
the disconnect and stops); the text received so far is kept as the partial result. The
engine also keeps the server's health (``ok``, ``unreachable``, ``error``), updated by every
request and by :meth:`RemoteEngine.probe`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx

from lsp_server.core.errors import Cancelled, InvalidParams
from lsp_server.engine.base import (
    CancelToken,
    DeltaCallback,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    InfillRequest,
    ModelInfo,
    Vocabulary,
)
from lsp_server.engine.chat_template import render_chat
from lsp_server.engine.remote import bodies, detect
from lsp_server.engine.remote.client import ServerClient
from lsp_server.engine.remote.config import RemoteConfig, normalize_url
from lsp_server.engine.remote.errors import RemoteError, event_error
from lsp_server.engine.remote.sse import event_data, loads
from lsp_server.engine.remote.stream import (
    Extract,
    Stream,
    chat_piece,
    completion_piece,
    infill_piece,
    stats,
    stop_reason,
)

log = logging.getLogger(__name__)

Build = Callable[[], Awaitable[tuple[str, dict[str, Any], Extract]]]
"""Prepares one streamed request (it may connect first): path, body, how to read events."""


class RemoteEngine:
    """Serve one role from an OpenAI-compatible server (all I/O on the asyncio loop)."""

    backend = "remote"
    # Capabilities (the Engine protocol): text prompts only, the server keeps its own cache.
    accepts_tokens = False
    keeps_kv_cache = False
    in_process = False
    vocabulary: Vocabulary | None = None

    def __init__(
        self,
        config: RemoteConfig,
        role: str = "chat",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if config.url != normalize_url(config.url):
            config = replace(config, url=normalize_url(config.url))
        self.config = config
        self.role = role
        self.url = config.display_url
        self._server = ServerClient(config, transport=transport)
        self._info = self._make_info(None, None)
        self.context_source = "default"
        self._last_stats: GenerationStats | None = None
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._api: str | None = None
        self._api_lock = asyncio.Lock()
        self._tokenize: str | None = None  # endpoint, "" when the server has none
        self.health = "unknown"
        self.health_error: RemoteError | None = None
        self.latency_ms: float | None = None
        self.checked_at: float | None = None
        self.on_health: Callable[[], None] | None = None
        """Called when ``health`` changes (the manager re-sends the status)."""

    # --- description ---
    @property
    def model_id(self) -> str:
        """The model requests name (as ``/v1/models`` lists it once connected)."""
        return self._server.model_id

    @property
    def info(self) -> ModelInfo:
        """Describe the served model (name, URL, context length)."""
        return self._info

    @property
    def last_stats(self) -> GenerationStats | None:
        """Stats of the most recent generation (finished, cancelled or cut)."""
        return self._last_stats

    def _make_info(self, n_ctx: int | None, n_train: int | None) -> ModelInfo:
        name = self.model_id or "(the server's model)"
        short = name.replace("\\", "/").rsplit("/", 1)[-1] if name.endswith(".gguf") else name
        ctx = n_ctx or detect.DEFAULT_CONTEXT
        return ModelInfo(
            name=short,
            path=self.url,
            architecture="remote",
            parameters=0,
            quantization="",
            size_bytes=0,
            context_length=ctx,
            trained_context_length=n_train or ctx,
            license="",
            has_chat_template=True,
        )

    def status(self) -> dict[str, Any]:
        """The ``remote`` part of the role's status: URL (no secrets), health, latency."""
        key_env = self.config.api_key_env
        err = self.health_error
        return {
            "url": self.url,
            "model": self.model_id or None,
            "health": self.health,
            "latencyMs": round(self.latency_ms, 1) if self.latency_ms is not None else None,
            "checkedAt": int(self.checked_at * 1000) if self.checked_at else None,
            "error": {"reason": err.reason, "message": err.message} if err else None,
            "completionApi": self._api,
            "contextLength": self._info.context_length,
            "contextSource": self.context_source,
            "apiKeyEnv": key_env or None,
            "apiKeySet": bool(key_env and os.environ.get(key_env)),
        }

    def _set_health(self, error: RemoteError | None, latency_ms: float | None = None) -> None:
        before = (self.health, self.health_error.reason if self.health_error else None)
        self.checked_at = time.time()
        if latency_ms is not None:
            self.latency_ms = latency_ms
        if error is None:
            self.health, self.health_error = "ok", None
        elif error.reason in ("streamCut", "contextExceeded", "badRequest"):
            return  # about this request, not the server
        else:
            self.health = "unreachable" if error.unreachable else "error"
            self.health_error = error
        after = (self.health, self.health_error.reason if self.health_error else None)
        if after != before and self.on_health is not None:
            try:
                self.on_health()
            except Exception:
                log.exception("health listener failed")

    # --- connection, model info, health ---
    async def connect(self) -> None:
        """Read ``/v1/models`` (the health check): model, context length, latency.

        Raises :class:`RemoteError` (and records it as the health) when the server
        cannot be used; later requests connect again.
        """
        async with self._connect_lock:
            try:
                found = await detect.probe(self._server)
            except RemoteError as exc:
                self._set_health(exc)
                raise
            self._server.model_id = found.model_id
            self.context_source = found.context_source
            self._info = self._make_info(found.context_length, found.trained_context_length)
            self._connected = True
            self._set_health(None, found.latency_ms)

    async def ensure_connected(self) -> None:
        """Connect once (again after a failure) before serving a request."""
        if not self._connected:
            await self.connect()

    async def probe(self) -> bool:
        """Check the server now (health and latency); return whether it is usable."""
        try:
            await self.connect()
        except RemoteError:
            return False
        return True

    async def completion_api(self) -> str:
        """The completion endpoint to use (``infill``, ``suffix``, ``prefix``), found once."""
        if self._api is not None:
            return self._api
        async with self._api_lock:
            if self._api is None:
                mode = self.config.completion_api
                if mode in detect.COMPLETION_APIS:
                    self._api = mode
                else:
                    self._api = await detect.detect_completion_api(self._server)
                log.info("%s completion on %s uses %s", self.role, self.url, self._api)
        return self._api

    # --- generation ---
    async def chat(
        self,
        messages: list[dict[str, str]],
        request: GenerationRequest,
        on_delta: DeltaCallback | None,
        cancel: CancelToken,
    ) -> GenerationResult:
        """Stream an answer from ``/v1/chat/completions`` (the server's chat template)."""
        path = "/v1/chat/completions"
        return await self._openai(path, chat_piece, request, on_delta, cancel, messages=messages)

    async def generate(
        self, request: GenerationRequest, on_delta: DeltaCallback | None, cancel: CancelToken
    ) -> GenerationResult:
        """Stream a raw text prompt through ``/v1/completions``."""
        if request.evaluate_only:
            return GenerationResult("", GenerationStats(stop_reason="warm"))
        if request.prompt is None:
            raise InvalidParams("a remote engine takes text prompts, not token ids")
        path = "/v1/completions"
        prompt = request.prompt
        return await self._openai(path, completion_piece, request, on_delta, cancel, prompt=prompt)

    async def _openai(
        self,
        path: str,
        extract: Extract,
        request: GenerationRequest,
        on_delta: DeltaCallback | None,
        cancel: CancelToken,
        **payload: Any,
    ) -> GenerationResult:
        """Stream ``payload`` with the request's limits, sampling and stops to ``path``."""

        async def build() -> tuple[str, dict[str, Any], Extract]:
            await self.ensure_connected()
            return path, bodies.stream_body(request, **payload), extract

        return await self._stream(
            build,
            on_delta=on_delta,
            cancel=cancel,
            stop_check=request.stop_check,
            time_budget_s=request.time_budget_s,
        )

    async def infill(self, request: InfillRequest, cancel: CancelToken) -> GenerationResult:
        """Complete code at a cursor with the best endpoint the server has; give up when
        nothing arrived within ``request.timeout_s`` (default: the configured
        ``completion_timeout_s``)."""

        async def build() -> tuple[str, dict[str, Any], Extract]:
            await self.ensure_connected()
            api = await self.completion_api()
            if api == "infill":
                return "/infill", bodies.infill_body(request), infill_piece
            body = bodies.completion_body(request, suffix=api == "suffix")
            return "/v1/completions", body, completion_piece

        return await self._stream(
            build,
            on_delta=None,
            cancel=cancel,
            stop_check=request.stop_check,
            first_timeout_s=(
                request.timeout_s
                if request.timeout_s is not None
                else self.config.completion_timeout_s
            ),
        )

    async def _stream(
        self,
        build: Build,
        *,
        on_delta: DeltaCallback | None,
        cancel: CancelToken,
        stop_check: Callable[[str], int | None] | None = None,
        first_timeout_s: float | None = None,
        time_budget_s: float | None = None,
    ) -> GenerationResult:
        """POST what ``build`` returns and read the event stream until done, stopped, cut,
        cancelled or out of time (``first_timeout_s``: for the first piece, connecting
        included)."""
        cancel.raise_if_cancelled()
        st = Stream(time.perf_counter())
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()

        def stop_waiting() -> None:
            if not wake.done():
                wake.set_result(None)

        def on_deadline() -> None:
            if not st.t_first:
                st.timed_out = True
                stop_waiting()

        def on_cancel() -> None:  # any thread
            loop.call_soon_threadsafe(stop_waiting)

        remove = cancel.add_callback(on_cancel)
        timer = loop.call_later(first_timeout_s, on_deadline) if first_timeout_s else None
        reader = asyncio.ensure_future(self._read(build, st, on_delta, stop_check, time_budget_s))
        try:
            await asyncio.wait({reader, wake}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._last_stats = stats(st, "cancelled")
            raise
        finally:
            remove()
            if timer is not None:
                timer.cancel()
            if not reader.done():
                reader.cancel()  # closes the HTTP stream: the server stops generating
                await asyncio.gather(reader, return_exceptions=True)
        if reader.done() and not reader.cancelled() and reader.exception() is None:
            result = GenerationResult(st.text(), stats(st, stop_reason(st)))
            self._last_stats = result.stats
            return result
        cancelled = cancel.cancelled and not st.timed_out
        partial = GenerationResult(st.text(), stats(st, "cancelled" if cancelled else "error"))
        self._last_stats = partial.stats
        if cancelled:
            raise Cancelled(f"request {cancel.reason}", data={"partial": partial})
        if st.timed_out:
            err = RemoteError(
                f"{self.url} produced nothing within {first_timeout_s:g} s: the server is slow "
                "or busy.",
                reason="timeout",
                url=self.url,
                partial=partial,
            )
            self._set_health(err)
            raise err
        exc = reader.exception() if not reader.cancelled() else None
        if isinstance(exc, RemoteError):
            exc.data["partial"] = partial
            self._set_health(exc)
            raise exc
        if exc is not None:
            raise exc
        raise Cancelled("request cancelled", data={"partial": partial})

    async def _read(
        self,
        build: Build,
        st: Stream,
        on_delta: DeltaCallback | None,
        stop_check: Callable[[str], int | None] | None,
        time_budget_s: float | None,
    ) -> None:
        path, body, extract = await build()  # (connects first when needed: cancellable)
        sent = time.perf_counter()
        try:
            async with self._server.stream(path, body) as response:
                st.t_headers = time.perf_counter()
                if response.status_code >= 400:
                    await response.aread()
                    raise self._server.http_error(response, path)
                self._set_health(None, (st.t_headers - sent) * 1000)
                async for data in event_data(response):
                    if data.strip() == "[DONE]":
                        st.done = True
                        if st.finish is None:  # e.g. interrupted for another request
                            break
                        return
                    payload = loads(data)
                    if not isinstance(payload, dict):
                        raise RemoteError(
                            f"{self.url} sent an event that is not JSON: {data[:120]!r}",
                            reason="badResponse",
                            url=self.url,
                        )
                    if payload.get("error"):
                        raise event_error(self.config, payload["error"])
                    piece = extract(payload, st)
                    if piece and self._take(piece, st, on_delta, stop_check, time_budget_s):
                        return  # leaving the block closes the stream
                    if st.done:
                        return
                self._check_finished(st)
        except httpx.HTTPError as exc:
            mid_stream = bool(st.t_headers)
            raise self._server.transport_error(
                exc, mid_stream=mid_stream, kept=bool(st.parts)
            ) from exc

    @staticmethod
    def _take(
        piece: str,
        st: Stream,
        on_delta: DeltaCallback | None,
        stop_check: Callable[[str], int | None] | None,
        time_budget_s: float | None,
    ) -> bool:
        """Add ``piece`` to the stream and pass it on; return whether to stop reading."""
        now = time.perf_counter()
        st.t_first = st.t_first or now
        st.t_last = now
        st.chunks += 1
        st.parts.append(piece)
        if on_delta is not None:
            on_delta(piece)
        if stop_check is not None:
            text = st.text()
            cut = stop_check(text)
            if cut is not None:
                st.parts = [text[:cut]]
                st.reason = "stop"
                return True
        if time_budget_s is not None and now - st.t0 > time_budget_s:
            st.reason = "time"
            return True
        return False

    def _check_finished(self, st: Stream) -> None:
        """The stream ended: raise ``streamCut`` unless the server said the answer was done."""
        if st.finish is not None:
            return
        if not st.chunks:
            message = (
                f"{self.url} ended the answer without sending any: the prompt may be longer "
                "than the server's context (set openLlm.remote.contextLength to it), or the "
                "server failed (see its log)."
            )
        else:
            message = (
                f"{self.url} ended the answer without finishing it (interrupted by another "
                "request?); the partial answer is kept."
            )
        raise RemoteError(message, reason="streamCut", url=self.url)

    # --- text utilities ---
    async def tokenize(
        self, text: str, *, add_bos: bool = False, special: bool = True
    ) -> list[int]:
        """Tokenize on the server (llama-server, vLLM, llama-cpp-python); servers without a
        tokenizer endpoint get an estimate (one placeholder id per 3 characters)."""
        await self.ensure_connected()
        candidates = (
            [self._tokenize] if self._tokenize is not None else ["/tokenize", "/extras/tokenize"]
        )
        for path in candidates:
            if not path:
                break
            body = {
                "content": text,
                "prompt": text,
                "input": text,
                "add_special": add_bos,
                "add_special_tokens": add_bos,
                "parse_special": special,
            }
            response = await self._server.post(path, body)
            payload = loads(response.text) if response.status_code == 200 else None
            tokens = payload.get("tokens") if isinstance(payload, dict) else None
            if isinstance(tokens, list):
                self._tokenize = path
                return [t if isinstance(t, int) else int(t.get("id", 0)) for t in tokens]
            if response.status_code in (401, 403, 429) or response.status_code >= 500:
                break  # not a missing endpoint: estimate this time, try again next time
        else:
            self._tokenize = ""
        return [0] * (len(text) // 3 + 1)

    async def render_chat(self, messages: list[dict[str, str]]) -> str:
        """An approximation of the prompt (ChatML): the server applies its own template."""
        return render_chat(None, messages)

    def needs_bos(self, prompt: str) -> bool:
        """Always: the server's tokenizer adds what its template needs."""
        return True

    async def clear_cache(self) -> None:
        """Nothing to clear on this side: the server keeps its own cache."""

    # --- closing ---
    async def aclose(self) -> None:
        """Close the HTTP client (and its connections)."""
        await self._server.aclose()

    def close(self) -> None:
        """Close the HTTP client from synchronous code (scheduled on the running loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.aclose())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)


_CLOSING: set[asyncio.Task[None]] = set()
"""Closes scheduled by :meth:`RemoteEngine.close`, kept until they finish."""
