"""Build the server: one call registers every feature module."""

from __future__ import annotations

import logging

from lsprotocol import types

from lsp_server.protocol.features import (
    chat,
    code_actions,
    completion,
    documents,
    generate,
    inline_completion,
    lifecycle,
    models,
    presets,
    status,
)
from lsp_server.protocol.logging import ClientLogHandler
from lsp_server.protocol.server import OpenLlmServer

FEATURES = (
    lifecycle, documents, completion, presets, status, generate, inline_completion, chat,
    code_actions, models,
)  # fmt: skip
"""Every feature module, registered in this order (``code_actions`` uses ``chat``'s service)."""

_LEVELS = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
}


def create_server(client_log: ClientLogHandler | None = None) -> OpenLlmServer:
    """Return a server with every feature registered, forwarding logs to the client."""
    server = OpenLlmServer()
    for feature in FEATURES:
        feature.register(server)
    if client_log is not None:

        def send(level: int, message: str) -> None:
            loop = server.loop
            if loop is None or loop.is_closed():
                return
            kind = _LEVELS.get(level, types.MessageType.Log)
            params = types.LogMessageParams(type=kind, message=message)
            # Frames are written from the loop's thread only (the engine thread logs too).
            loop.call_soon_threadsafe(server.window_log_message, params)

        client_log.send = send
    return server
