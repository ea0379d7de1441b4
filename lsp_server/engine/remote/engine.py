"""An engine on a team's OpenAI-compatible inference server, over HTTP.

The same :class:`~lsp_server.engine.base.Engine` interface as the in-process engine,
served by llama.cpp's ``llama-server``, vLLM, Ollama, LM Studio or llama-cpp-python's
server through their existing APIs (httpx, server-sent events):

- chat: ``/v1/chat/completions`` with the messages (the server applies its template);
- completion: llama-server's ``/infill`` when the server has it, else ``/v1/completions``
  with ``suffix`` when the server takes it, else prefix-only ``/v1/completions``
  (detected once per engine, or forced with ``openLlm.remote.completion.api``);
- ``/v1/models`` for the model list, the context length and the health check.

Cancelling a :class:`~lsp_server.engine.base.CancelToken` closes the HTTP stream at once
(the server sees the disconnect and stops). Failures become :class:`RemoteError` with a
``reason`` a client can act on; the API key is read from an environment variable named
in the settings and is never logged, shown or stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
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
    SamplingParams,
)
from lsp_server.engine.chat_template import render_chat
from lsp_server.engine.remote.config import ENV_NAME, RemoteConfig, config_error, normalize_url
from lsp_server.engine.remote.errors import (
    RemoteError,
    Where,
    event_error,
    http_error,
    transport_error,
)
from lsp_server.engine.remote.sse import event_data, loads

log = logging.getLogger(__name__)
# httpx logs every request at INFO; the server's own messages say what matters.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

DEFAULT_CONTEXT = 4096
"""Context assumed when neither the server nor ``openLlm.remote.contextLength`` gives one."""
COMPLETION_APIS = ("infill", "suffix", "prefix")


@dataclass
class _Stream:
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
        return "".join(self.parts)


Extract = Callable[[dict[str, Any], _Stream], str]
"""Take one event's payload: return its text, note finish/usage/timings on the stream."""


def _first_choice(payload: dict[str, Any]) -> dict[str, Any]:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _common(payload: dict[str, Any], st: _Stream) -> None:
    if isinstance(payload.get("usage"), dict):
        st.usage = payload["usage"]
    if isinstance(payload.get("timings"), dict):
        st.timings = payload["timings"]


def _chat_piece(payload: dict[str, Any], st: _Stream) -> str:
    _common(payload, st)
    choice = _first_choice(payload)
    if choice.get("finish_reason"):
        st.finish = str(choice["finish_reason"])
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


def _completion_piece(payload: dict[str, Any], st: _Stream) -> str:
    _common(payload, st)
    choice = _first_choice(payload)
    if choice.get("finish_reason"):
        st.finish = str(choice["finish_reason"])
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _infill_piece(payload: dict[str, Any], st: _Stream) -> str:
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


def _stream_body(request: GenerationRequest, **payload: Any) -> dict[str, Any]:
    """A streaming OpenAI-style body: ``payload`` plus limits, sampling and stop strings."""
    body: dict[str, Any] = {
        **payload,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_tokens,
        **_sampling(request.sampling),
    }
    if request.stop:
        body["stop"] = list(request.stop)
    return body


def _sampling(s: SamplingParams) -> dict[str, Any]:
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


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and value >= 0 else None


def _stats(st: _Stream, reason: str) -> GenerationStats:
    """Stats of a stream: the server's usage/timings where present, else measured here."""
    stats = GenerationStats(stop_reason=reason)
    usage = st.usage or {}
    timings = st.timings or {}
    prompt = _int(usage.get("prompt_tokens"))
    cached = _int(timings.get("cache_n"))
    details = usage.get("prompt_tokens_details")
    if cached is None and isinstance(details, dict):
        cached = _int(details.get("cached_tokens"))
    evaluated = _int(timings.get("prompt_n"))
    if prompt is None and evaluated is not None:
        prompt = evaluated + (cached or 0)
    stats.prompt_tokens = prompt or 0
    stats.reused_tokens = cached or 0
    stats.evaluated_tokens = (
        evaluated if evaluated is not None else max(0, stats.prompt_tokens - stats.reused_tokens)
    )
    generated = _int(usage.get("completion_tokens"))
    if generated is None:
        generated = _int(timings.get("predicted_n"))
    if generated is None or reason in ("stop", "time", "cancelled", "error"):
        generated = st.chunks if generated is None else min(generated, max(st.chunks, 0))
    stats.generated_tokens = generated
    if st.t_first:
        stats.first_token_ms = (st.t_first - st.t0) * 1000
        stats.generation_ms = (st.t_last - st.t_first) * 1000
    prompt_ms = timings.get("prompt_ms")
    stats.prompt_ms = (
        float(prompt_ms) if isinstance(prompt_ms, (int, float)) else (stats.first_token_ms)
    )
    # Measured where the editor sees it: pieces after the first over the time they took.
    if st.chunks > 1 and st.t_last > st.t_first:
        per_chunk = max(1.0, generated / st.chunks) if generated else 1.0
        stats.tokens_per_s = (st.chunks - 1) * per_chunk / (st.t_last - st.t_first)
    return stats


def _stop_reason(st: _Stream, cancelled: bool = False) -> str:
    if cancelled:
        return "cancelled"
    if st.reason is not None:
        return st.reason
    if st.finish == "length":
        return "length"
    if st.finish in ("stop", "eos", "end_turn"):
        return "eos"
    return st.finish or "eos"


# ---------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------


class RemoteEngine:
    """Serve one role from an OpenAI-compatible server (all I/O on the asyncio loop)."""

    backend = "remote"

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
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            write=config.read_timeout_s,
            pool=config.connect_timeout_s,
        )
        self._client = httpx.AsyncClient(
            base_url=config.url or "http://invalid.invalid",
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            trust_env=True,  # HTTPS_PROXY/NO_PROXY and SSL_CERT_FILE apply, as with curl
        )
        self.model_id = config.model
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
        ctx = n_ctx or DEFAULT_CONTEXT
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

    # --- HTTP helpers ---
    def _where(self) -> Where:
        cfg = self.config
        return Where(
            url=self.url,
            model=self.model_id,
            api_key_env=cfg.api_key_env,
            connect_timeout_s=cfg.connect_timeout_s,
            read_timeout_s=cfg.read_timeout_s,
        )

    def _http_error(
        self, response: httpx.Response, path: str, partial: GenerationResult | None = None
    ) -> RemoteError:
        return http_error(
            self._where(),
            response.status_code,
            response.text if response.content else "",
            path=path,
            reason_phrase=response.reason_phrase,
            retry_after=response.headers.get("retry-after"),
            partial=partial,
        )

    def _transport_error(self, exc: BaseException, st: _Stream | None) -> RemoteError:
        mid_stream = st is not None and bool(st.t_headers)
        kept = st is not None and bool(st.parts)
        return transport_error(self._where(), exc, mid_stream=mid_stream, kept=kept)

    def _headers(self, stream: bool = False) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        name = self.config.api_key_env
        if name and ENV_NAME.match(name):
            key = os.environ.get(name)
            if key:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    # --- connection, model info, health ---
    async def connect(self) -> None:
        """Read ``/v1/models`` (the health check): model, context length, latency.

        Raises :class:`RemoteError` (and records it as the health) when the server
        cannot be used; later requests connect again.
        """
        async with self._connect_lock:
            try:
                await self._connect()
            except RemoteError as exc:
                self._set_health(exc)
                raise

    async def _connect(self) -> None:
        problem = config_error(self.config)
        if problem is not None:
            raise problem
        t0 = time.perf_counter()
        try:
            response = await self._client.get("/v1/models", headers=self._headers())
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, None) from exc
        latency = (time.perf_counter() - t0) * 1000
        if response.status_code >= 400:
            raise self._http_error(response, "/v1/models")
        body = loads(response.text)
        models = body.get("data") if isinstance(body, dict) else None
        if not isinstance(models, list):
            raise RemoteError(
                f"{self.url}/v1/models did not answer with a model list: is this an "
                "OpenAI-compatible server?",
                reason="badResponse",
                url=self.url,
            )
        entries = [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]
        ids = [str(m["id"]) for m in entries]
        entry = self._choose_model(entries, ids)
        self.model_id = str(entry["id"]) if entry is not None else self.config.model
        n_ctx, n_train = _context_of(entry)
        if self.config.context_length:
            n_ctx, self.context_source = self.config.context_length, "setting"
        elif n_ctx:
            self.context_source = "server"
        else:
            n_ctx = await self._props_context()
            self.context_source = "server" if n_ctx else "default"
        self._info = self._make_info(n_ctx, n_train)
        self._connected = True
        self._set_health(None, latency)

    def _choose_model(self, entries: list[dict[str, Any]], ids: list[str]) -> dict[str, Any] | None:
        wanted = self.config.model
        if not wanted:
            return entries[0] if entries else None
        for entry in entries:
            mid = str(entry["id"])
            base = mid.replace("\\", "/").rsplit("/", 1)[-1]
            if wanted in (mid, base, base.removesuffix(".gguf")) or mid == f"{wanted}:latest":
                return entry
        if not entries:
            return None
        shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
        raise RemoteError(
            f"{self.url} has no model {wanted!r}; it serves: {shown}. Set openLlm.remote.model "
            "to one of them.",
            reason="modelNotFound",
            url=self.url,
            data={"available": ids[:50]},
        )

    async def _props_context(self) -> int | None:
        """llama-server's per-slot context (``/props``); None elsewhere."""
        try:
            response = await self._client.get("/props", headers=self._headers())
        except httpx.HTTPError:
            return None
        body = loads(response.text) if response.status_code == 200 else None
        settings = body.get("default_generation_settings") if isinstance(body, dict) else None
        if isinstance(settings, dict):
            return _int(settings.get("n_ctx")) or None
        return None

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

    # --- generation ---
    async def _stream(
        self,
        build: Callable[[], Awaitable[tuple[str, dict[str, Any], Extract]]],
        *,
        on_delta: DeltaCallback | None,
        cancel: CancelToken,
        stop_check: Callable[[str], int | None] | None = None,
        first_timeout_s: float | None = None,
        time_budget_s: float | None = None,
    ) -> GenerationResult:
        """POST what ``build`` returns (path, body, how to read events; it may connect first)
        and read the event stream until done, stopped, cut, cancelled or out of time."""
        cancel.raise_if_cancelled()
        st = _Stream(time.perf_counter())
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
            self._last_stats = _stats(st, "cancelled")
            raise
        finally:
            remove()
            if timer is not None:
                timer.cancel()
            if not reader.done():
                reader.cancel()  # closes the HTTP stream: the server stops generating
                await asyncio.gather(reader, return_exceptions=True)
        if reader.done() and not reader.cancelled() and reader.exception() is None:
            result = GenerationResult(st.text(), _stats(st, _stop_reason(st)))
            self._last_stats = result.stats
            return result
        cancelled = cancel.cancelled and not st.timed_out
        partial = GenerationResult(st.text(), _stats(st, "cancelled" if cancelled else "error"))
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
        build: Callable[[], Awaitable[tuple[str, dict[str, Any], Extract]]],
        st: _Stream,
        on_delta: DeltaCallback | None,
        stop_check: Callable[[str], int | None] | None,
        time_budget_s: float | None,
    ) -> None:
        path, body, extract = await build()  # (connects first when needed: cancellable)
        sent = time.perf_counter()
        try:
            async with self._client.stream(
                "POST", path, json=body, headers=self._headers(stream=True)
            ) as response:
                st.t_headers = time.perf_counter()
                if response.status_code >= 400:
                    await response.aread()
                    raise self._http_error(response, path)
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
                        raise event_error(self._where(), payload["error"])
                    piece = extract(payload, st)
                    if piece:
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
                                return  # leaving the block closes the stream
                        if time_budget_s is not None and now - st.t0 > time_budget_s:
                            st.reason = "time"
                            return
                    if st.done:
                        return
                if st.finish is None and not st.chunks:
                    raise RemoteError(
                        f"{self.url} ended the answer without sending any: the prompt may be "
                        "longer than the server's context (set openLlm.remote.contextLength "
                        "to it), or the server failed (see its log).",
                        reason="streamCut",
                        url=self.url,
                    )
                if st.finish is None:
                    raise RemoteError(
                        f"{self.url} ended the answer without finishing it (interrupted by "
                        "another request?); the partial answer is kept.",
                        reason="streamCut",
                        url=self.url,
                    )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, st) from exc

    def _with_model(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.model_id:
            body["model"] = self.model_id
        return body

    async def chat(
        self,
        messages: list[dict[str, str]],
        request: GenerationRequest,
        on_delta: DeltaCallback | None,
        cancel: CancelToken,
    ) -> GenerationResult:
        """Stream an answer from ``/v1/chat/completions`` (the server's chat template)."""

        async def build() -> tuple[str, dict[str, Any], Extract]:
            await self.ensure_connected()
            body = _stream_body(request, messages=messages)
            return "/v1/chat/completions", self._with_model(body), _chat_piece

        return await self._stream(
            build,
            on_delta=on_delta,
            cancel=cancel,
            stop_check=request.stop_check,
            time_budget_s=request.time_budget_s,
        )

    async def generate(
        self, request: GenerationRequest, on_delta: DeltaCallback | None, cancel: CancelToken
    ) -> GenerationResult:
        """Stream a raw text prompt through ``/v1/completions``."""
        if request.evaluate_only:
            return GenerationResult("", GenerationStats(stop_reason="warm"))
        if request.prompt is None:
            raise InvalidParams("a remote engine takes text prompts, not token ids")
        prompt = request.prompt

        async def build() -> tuple[str, dict[str, Any], Extract]:
            await self.ensure_connected()
            body = _stream_body(request, prompt=prompt)
            return "/v1/completions", self._with_model(body), _completion_piece

        return await self._stream(
            build,
            on_delta=on_delta,
            cancel=cancel,
            stop_check=request.stop_check,
            time_budget_s=request.time_budget_s,
        )

    async def infill(self, request: InfillRequest, cancel: CancelToken) -> GenerationResult:
        """Complete code at a cursor with the best endpoint the server has."""
        sampling = _sampling(request.sampling)

        async def build() -> tuple[str, dict[str, Any], Extract]:
            await self.ensure_connected()
            api = await self.completion_api()
            if api == "infill":
                body: dict[str, Any] = {
                    "input_prefix": request.before,
                    "prompt": request.typed,
                    "input_suffix": request.suffix,
                    "input_extra": [{"filename": p, "text": t} for p, t in request.extra],
                    "n_predict": request.max_tokens,
                    "stream": True,
                    "cache_prompt": True,
                    **sampling,
                }
                return "/infill", self._with_model(body), _infill_piece
            body = {
                "prompt": prefix_prompt(request),
                "max_tokens": request.max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
                **sampling,
            }
            if api == "suffix":
                body["suffix"] = request.suffix
            return "/v1/completions", self._with_model(body), _completion_piece

        return await self._stream(
            build,
            on_delta=None,
            cancel=cancel,
            stop_check=request.stop_check,
            first_timeout_s=request.timeout_s,
        )

    async def completion_api(self) -> str:
        """The completion endpoint to use (``infill``, ``suffix``, ``prefix``), found once."""
        if self._api is not None:
            return self._api
        async with self._api_lock:
            if self._api is None:
                mode = self.config.completion_api
                self._api = mode if mode in COMPLETION_APIS else await self._detect_api()
                log.info("%s completion on %s uses %s", self.role, self.url, self._api)
        return self._api

    async def _detect_api(self) -> str:
        probe = {"n_predict": 1, "max_tokens": 1, "temperature": 0, "stream": False}
        infill = {"input_prefix": "def f(", "input_suffix": "):\n    pass\n", "prompt": "", **probe}
        if await self._accepts("/infill", self._with_model(infill)):
            return "infill"
        if await self._ignores_suffix():
            return "prefix"
        body = {"prompt": "def f(", "suffix": "):\n    pass\n", **probe}
        if await self._accepts("/v1/completions", self._with_model(body)):
            return "suffix"
        return "prefix"

    async def _accepts(self, path: str, body: dict[str, Any]) -> bool:
        """Whether ``path`` serves ``body`` (200); transient failures are raised, not cached."""
        try:
            response = await self._client.post(path, json=body, headers=self._headers())
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, None) from exc
        if response.status_code in (401, 403, 429) or response.status_code >= 502:
            raise self._http_error(response, path)
        return response.status_code == 200

    async def _ignores_suffix(self) -> bool:
        """llama-cpp-python's server (0.3) takes ``suffix`` but uses placeholder FIM tokens."""
        try:
            response = await self._client.get("/openapi.json", headers=self._headers())
        except httpx.HTTPError:
            return False
        body = loads(response.text) if response.status_code == 200 else None
        info = body.get("info") if isinstance(body, dict) else None
        title = str(info.get("title", "")) if isinstance(info, dict) else ""
        return "llama.cpp python" in title.lower()

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
            try:
                response = await self._client.post(
                    path, json=self._with_model(body), headers=self._headers()
                )
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, None) from exc
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

    # --- closing ---
    async def aclose(self) -> None:
        """Close the HTTP client (and its connections)."""
        await self._client.aclose()

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


def _context_of(entry: dict[str, Any] | None) -> tuple[int | None, int | None]:
    """Context length (and trained length) from a ``/v1/models`` entry, where servers put it."""
    if entry is None:
        return None, None
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
    assert isinstance(meta, dict)
    n_ctx = None
    for key in ("max_model_len", "loaded_context_length", "context_length", "n_ctx"):
        n_ctx = n_ctx or _int(entry.get(key)) or _int(meta.get(key))
    n_train = _int(meta.get("n_ctx_train")) or _int(entry.get("max_context_length"))
    return n_ctx or None, n_train or None


def prefix_prompt(request: InfillRequest) -> str:
    """The text prompt for ``/v1/completions``: other files and the file's path as comments,
    then the code before the cursor."""
    from lsp_server.completion.prompt import comment_prefix

    marker = comment_prefix(request.language)
    parts = [f"{marker} {path}\n{text.rstrip()}\n\n" for path, text in request.extra]
    if request.path:
        parts.append(f"{marker} {request.path}\n")
    parts.append(request.before + request.typed)
    return "".join(parts)
