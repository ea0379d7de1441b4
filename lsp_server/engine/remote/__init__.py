"""Engines on a team's OpenAI-compatible inference server, over HTTP.

The same :class:`~lsp_server.engine.base.Engine` interface as the in-process engine,
served by llama.cpp's ``llama-server``, vLLM, Ollama, LM Studio or llama-cpp-python's
server through their existing APIs (httpx, server-sent events):

- chat: ``/v1/chat/completions`` with the messages (the server applies its template);
- completion: llama-server's ``/infill`` when the server has it, else ``/v1/completions``
  with ``suffix`` when the server takes it, else prefix-only ``/v1/completions``
  (detected once per engine, or forced with ``openLlm.remote.completion.api``);
- ``/v1/models`` for the model list, the context length and the health check.

Failures become :class:`RemoteError` with a ``reason`` a client can act on; the API key is
read from an environment variable named in the settings and is never logged, shown or
stored. One module per job:

- :mod:`.config`: :class:`RemoteConfig` and URLs (shown without credentials);
- :mod:`.errors`: :class:`RemoteError` and the pure tables that classify failures;
- :mod:`.sse`: the server-sent events parser;
- :mod:`.stream`: what a streamed answer received (per-API event readers, stats);
- :mod:`.bodies`: the request bodies of each endpoint;
- :mod:`.client`: the HTTP client of one server (key, model, typed errors);
- :mod:`.detect`: the health probe (model, context length) and the completion endpoint;
- :mod:`.engine`: :class:`RemoteEngine`, streaming chat and completion with cancellation.
"""

from lsp_server.engine.remote.config import (
    RemoteConfig,
    display_url,
    normalize_url,
)
from lsp_server.engine.remote.engine import RemoteEngine
from lsp_server.engine.remote.errors import (
    UNREACHABLE,
    RemoteError,
    classify_http,
    classify_transport,
)

__all__ = [
    "UNREACHABLE",
    "RemoteConfig",
    "RemoteEngine",
    "RemoteError",
    "classify_http",
    "classify_transport",
    "display_url",
    "normalize_url",
]
