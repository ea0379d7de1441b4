"""Engines on a team's OpenAI-compatible inference server, over HTTP (see :mod:`.engine`)."""

from lsp_server.engine.remote.config import (
    RemoteConfig,
    display_url,
    normalize_url,
    remote_configs,
)
from lsp_server.engine.remote.engine import RemoteEngine, RemoteError

__all__ = [
    "RemoteConfig",
    "RemoteEngine",
    "RemoteError",
    "display_url",
    "normalize_url",
    "remote_configs",
]
