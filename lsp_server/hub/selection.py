"""Which model each role uses when the user picked one with ``openLlm/models/select``.

A selection is remembered in ``<data dir>/state/models.json`` together with the value
the role's setting had when it was made. The latest explicit choice wins:

* a selection overrides ``openLlm.model`` (chat) or ``openLlm.completion.model``
  (completion), and the active preset's model, while that value stays what it was;
* changing the setting (or switching to a preset that names a model) afterwards drops
  the selection, so the newer choice wins;
* selecting ``null`` clears it.

Selecting a chat model does not move the completion model: when
``openLlm.completion.model`` is empty (it follows ``openLlm.model``), it keeps what the
setting gives (the bundled Gemma 3 270M when ``openLlm.model`` is empty too).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from lsp_server.config.settings import Settings
from lsp_server.hub.state import read_json, state_path, write_json

__all__ = ["ROLES", "SelectionStore", "role_setting"]

log = logging.getLogger(__name__)

ROLES = ("chat", "completion")


def role_setting(settings: Settings, role: str) -> str:
    """The setting a selection for ``role`` overrides (raw, before any fallback)."""
    return settings.model if role == "chat" else settings.completion.model


class SelectionStore:
    """Selected models by role, in ``<data dir>/state/models.json``."""

    _lock = threading.Lock()

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        """The JSON file."""
        return self._path if self._path is not None else state_path("models.json")

    def all(self) -> dict[str, dict[str, Any]]:
        """Role → ``{"model", "setting", "at"}``."""
        selected = read_json(self.path).get("selected")
        if not isinstance(selected, dict):
            return {}
        return {
            role: rec
            for role, rec in selected.items()
            if role in ROLES and isinstance(rec, dict) and isinstance(rec.get("model"), str)
        }

    def set(self, role: str, model: str | None, setting: str) -> None:
        """Select ``model`` for ``role`` (None clears), remembering the setting's value."""
        with self._lock:
            data = self.all()
            if model is None:
                data.pop(role, None)
            else:
                data[role] = {"model": model, "setting": setting, "at": int(time.time())}
            write_json(self.path, {"selected": data})

    def apply(self, settings: Settings) -> tuple[Settings, list[str]]:
        """Settings with the selections applied, and a note per selection dropped because
        its setting changed since."""
        selected = self.all()
        notes: list[str] = []
        live: dict[str, str] = {}
        for role, rec in selected.items():
            if rec.get("setting", "") != role_setting(settings, role):
                notes.append(
                    f"the {role} model selected earlier ({rec['model']}) gives way to the "
                    "changed setting"
                )
                self.set(role, None, "")
                continue
            live[role] = rec["model"]
        if not live:
            return settings, notes
        completion = settings.completion
        update: dict[str, Any] = {}
        if "chat" in live:
            update["model"] = live["chat"]
            if not completion.model and "completion" not in live:
                keep = settings.model or _bundled_completion()
                if keep:
                    completion = completion.model_copy(update={"model": keep})
        if "completion" in live:
            completion = completion.model_copy(update={"model": live["completion"]})
        if completion is not settings.completion:
            update["completion"] = completion
        return settings.model_copy(update=update), notes


def _bundled_completion() -> str:
    """The bundled completion model's path ('' when its packages are missing)."""
    from lsp_server.core.errors import OpenLlmError
    from lsp_server.models.bundled import bundled_gemma_path

    try:
        return str(bundled_gemma_path())
    except OpenLlmError:
        return ""
