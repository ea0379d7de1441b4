"""``openLlm/status``: what model runs, its state, and how fast it was last time."""

from __future__ import annotations

from typing import Any

from lsp_server.protocol import methods
from lsp_server.protocol.features.inline_completion import completion_status
from lsp_server.protocol.server import OpenLlmServer, custom_request


def status(ls: OpenLlmServer) -> dict[str, Any]:
    """Return the full status, including settings problems."""
    result = ls.manager().status()
    result["settingsProblems"] = list(ls.settings_problems)
    result["completion"] = completion_status(ls)
    return result


def register(ls: OpenLlmServer) -> None:
    """Register ``openLlm/status``."""

    @custom_request(ls, methods.STATUS)
    async def on_status(ls: OpenLlmServer, _params: None) -> dict[str, Any]:
        return status(ls)
