"""What a remote server is and can do: the health probe and the completion endpoint.

:func:`probe` is the health check (``GET /v1/models``): it measures the latency, picks the
model the settings name (or the server's first) and finds the context length where the
servers put it (vLLM's ``max_model_len``, LM Studio's ``loaded_context_length``,
llama-server's ``/props``), else the setting, else :data:`DEFAULT_CONTEXT`.

:func:`detect_completion_api` chooses how completions are served: llama-server's
``/infill`` when it answers, else ``/v1/completions`` with ``suffix`` when the server takes
it, else prefix-only ``/v1/completions``. llama-cpp-python's server takes ``suffix`` but
fills it in with placeholder FIM tokens, so it gets prefix-only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lsp_server.engine.remote.client import ServerClient
from lsp_server.engine.remote.errors import RemoteError, config_error
from lsp_server.engine.remote.sse import loads
from lsp_server.engine.remote.stream import count

DEFAULT_CONTEXT = 4096
"""Context assumed when neither the server nor ``openLlm.remote.contextLength`` gives one."""
COMPLETION_APIS = ("infill", "suffix", "prefix")
"""The ways to serve a completion, best first (``openLlm.remote.completion.api``)."""


@dataclass(frozen=True)
class Probe:
    """What one health check found."""

    model_id: str
    """The model as ``/v1/models`` lists it (the setting when the list is empty)."""
    context_length: int | None
    trained_context_length: int | None
    context_source: str
    """Where the context length comes from: ``server``, ``setting`` or ``default`` (None)."""
    latency_ms: float


async def probe(server: ServerClient) -> Probe:
    """Check the server: its model list, the model to use and its context length.

    Raises :class:`RemoteError` when the settings are wrong or the server cannot be used.
    """
    problem = config_error(server.config)
    if problem is not None:
        raise problem
    t0 = time.perf_counter()
    response = await server.get("/v1/models")
    latency = (time.perf_counter() - t0) * 1000
    if response.status_code >= 400:
        raise server.http_error(response, "/v1/models")
    body = loads(response.text)
    models = body.get("data") if isinstance(body, dict) else None
    if not isinstance(models, list):
        raise RemoteError(
            f"{server.url}/v1/models did not answer with a model list: is this an "
            "OpenAI-compatible server?",
            reason="badResponse",
            url=server.url,
        )
    entries = [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]
    entry = choose_model(entries, server.config.model, server.url)
    model_id = str(entry["id"]) if entry is not None else server.config.model
    n_ctx, n_train = context_of(entry)
    if server.config.context_length:
        n_ctx, source = server.config.context_length, "setting"
    elif n_ctx:
        source = "server"
    else:
        n_ctx = await props_context(server)
        source = "server" if n_ctx else "default"
    return Probe(model_id, n_ctx, n_train, source, latency)


def choose_model(entries: list[dict[str, Any]], wanted: str, url: str) -> dict[str, Any] | None:
    """The ``/v1/models`` entry of the model named ``wanted`` (its id, file name or Ollama
    name without ``:latest``), or the first one when none is wanted.

    Raises :class:`RemoteError` (``modelNotFound``, listing the ids) when it is not there.
    """
    if not wanted:
        return entries[0] if entries else None
    for entry in entries:
        mid = str(entry["id"])
        base = mid.replace("\\", "/").rsplit("/", 1)[-1]
        if wanted in (mid, base, base.removesuffix(".gguf")) or mid == f"{wanted}:latest":
            return entry
    if not entries:
        return None
    ids = [str(e["id"]) for e in entries]
    shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
    raise RemoteError(
        f"{url} has no model {wanted!r}; it serves: {shown}. Set openLlm.remote.model "
        "to one of them.",
        reason="modelNotFound",
        url=url,
        data={"available": ids[:50]},
    )


def context_of(entry: dict[str, Any] | None) -> tuple[int | None, int | None]:
    """Context length (and trained length) from a ``/v1/models`` entry, where servers put it."""
    if entry is None:
        return None, None
    meta = entry.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    n_ctx = None
    for key in ("max_model_len", "loaded_context_length", "context_length", "n_ctx"):
        n_ctx = n_ctx or count(entry.get(key)) or count(meta.get(key))
    n_train = count(meta.get("n_ctx_train")) or count(entry.get("max_context_length"))
    return n_ctx or None, n_train or None


async def props_context(server: ServerClient) -> int | None:
    """llama-server's per-slot context (``/props``); None elsewhere."""
    body = await _get_json(server, "/props")
    settings = body.get("default_generation_settings") if isinstance(body, dict) else None
    if isinstance(settings, dict):
        return count(settings.get("n_ctx")) or None
    return None


async def _get_json(server: ServerClient, path: str) -> Any:
    """The JSON ``path`` answers with (200); None on any failure (these are optional)."""
    try:
        response = await server.get(path)
    except RemoteError:
        return None
    return loads(response.text) if response.status_code == 200 else None


# ---------------------------------------------------------------------------
# The completion endpoint
# ---------------------------------------------------------------------------

_PROBE = {"n_predict": 1, "max_tokens": 1, "temperature": 0, "stream": False}
_BEFORE, _AFTER = "def f(", "):\n    pass\n"


async def detect_completion_api(server: ServerClient) -> str:
    """The best completion endpoint ``server`` has: ``infill``, ``suffix`` or ``prefix``.

    Raises :class:`RemoteError` on failures that say nothing about the endpoints (the
    server is down, the key is refused, rate limits): detect again later.
    """
    infill = {"input_prefix": _BEFORE, "input_suffix": _AFTER, "prompt": "", **_PROBE}
    if await accepts(server, "/infill", infill):
        return "infill"
    if await ignores_suffix(server):
        return "prefix"
    if await accepts(server, "/v1/completions", {"prompt": _BEFORE, "suffix": _AFTER, **_PROBE}):
        return "suffix"
    return "prefix"


async def accepts(server: ServerClient, path: str, body: dict[str, Any]) -> bool:
    """Whether ``path`` serves ``body`` (200); transient failures are raised, not cached."""
    response = await server.post(path, body)
    if response.status_code in (401, 403, 429) or response.status_code >= 502:
        raise server.http_error(response, path)
    return response.status_code == 200


async def ignores_suffix(server: ServerClient) -> bool:
    """llama-cpp-python's server (0.3) takes ``suffix`` but uses placeholder FIM tokens."""
    body = await _get_json(server, "/openapi.json")
    info = body.get("info") if isinstance(body, dict) else None
    title = str(info.get("title", "")) if isinstance(info, dict) else ""
    return "llama.cpp python" in title.lower()
