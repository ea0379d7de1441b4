"""``openLlm/status``: what model runs, its state, and how fast it was last time."""

from __future__ import annotations

from typing import Any

from lsp_server.core.errors import OpenLlmError
from lsp_server.protocol import methods
from lsp_server.protocol.features.inline_completion import completion_status
from lsp_server.protocol.server import OpenLlmServer, custom_request


def status(ls: OpenLlmServer) -> dict[str, Any]:
    """Return the full status, including settings problems."""
    result = ls.manager().status()
    result["settingsProblems"] = list(ls.settings_problems)
    result["completion"] = completion_status(ls)
    # Which backend serves each role: "local", "remote" or "local-fallback".
    result["backends"] = {role: r.get("backend") for role, r in result["roles"].items()}
    result["preset"] = _active_preset(ls)
    return result


def _active_preset(ls: OpenLlmServer) -> dict[str, Any] | None:
    """The first workspace folder's active preset (``{id, name, folderUri}``), if any."""
    folder = ls.folder_for(None)
    if folder is None:
        return None
    try:
        active = ls.presets().active(folder)
    except OpenLlmError:
        return None
    preset = active.entry.preset
    return {"id": preset.id, "name": preset.name, "folderUri": active.folder_uri}


def register(ls: OpenLlmServer) -> None:
    """Register ``openLlm/status``; ``openLlm/statusChanged`` carries the same object."""
    ls.status_builder = lambda: status(ls)

    @custom_request(ls, methods.STATUS)
    async def on_status(ls: OpenLlmServer, _params: None) -> dict[str, Any]:
        return status(ls)
