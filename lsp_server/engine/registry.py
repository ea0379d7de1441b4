"""Engines on inference servers, by kind: the one place that constructs them.

The in-process llama.cpp engine is loaded by :mod:`lsp_server.engine.manager` (it shares
weights between roles). An engine that talks to a server implements
:class:`ServerEngine`; adding one (for example Ollama's native API) is a new module and
one line in :data:`SERVER_ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from lsp_server.core.errors import InvalidParams
from lsp_server.engine.base import Engine
from lsp_server.engine.remote import RemoteConfig, RemoteEngine


class ServerEngine(Engine, Protocol):
    """An engine on an inference server: connected, health-checked, closed asynchronously.

    :meth:`connect` raises :class:`~lsp_server.engine.remote.RemoteError`; a
    ``badConfig`` reason means nothing works until the settings change.
    """

    on_health: Callable[[], None] | None
    """Called when :attr:`health` changes (the manager re-sends the status)."""

    @property
    def url(self) -> str:
        """The server's URL, safe to show (no credentials)."""
        ...

    @property
    def health(self) -> str:
        """``ok``, ``unreachable``, ``error`` or ``unknown``."""
        ...

    async def connect(self) -> None:
        """Reach the server and read what it serves; raise when it cannot be used."""
        ...

    async def probe(self) -> bool:
        """Check the server now; return whether it is usable."""
        ...

    def status(self) -> dict[str, Any]:
        """The ``remote`` part of the role's status (URL, health, latency, ...)."""
        ...

    async def aclose(self) -> None:
        """Close the connections."""
        ...


ServerFactory = Callable[[RemoteConfig, str], ServerEngine]
"""Builds an engine for one role (``chat`` or ``completion``) from its server config."""

SERVER_ENGINES: dict[str, ServerFactory] = {
    "openai": RemoteEngine,  # OpenAI-compatible: llama-server, vLLM, Ollama, LM Studio, ...
}


def create_server_engine(kind: str, config: RemoteConfig, role: str) -> ServerEngine:
    """Build the ``kind`` engine for ``role``; raise :class:`InvalidParams` for an unknown kind."""
    factory = SERVER_ENGINES.get(kind)
    if factory is None:
        known = ", ".join(sorted(SERVER_ENGINES))
        raise InvalidParams(f"unknown server engine {kind!r} (known: {known})")
    return factory(config, role)
