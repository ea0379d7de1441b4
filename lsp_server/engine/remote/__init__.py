"""Engines on a team's OpenAI-compatible inference server, over HTTP (see :mod:`.engine`)."""

from lsp_server.engine.remote.config import (
    RemoteConfig,
    display_url,
    normalize_url,
    remote_configs,
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
    "remote_configs",
]
