"""Safety rules for workspace presets, which come from a (possibly untrusted) cloned repository.

A workspace preset must not make the server send code elsewhere or load arbitrary files:

* a model reference that is an ``http(s)://`` URL is always refused;
* a local model path must lie inside the workspace folder or one of the user's model
  folders, unless the user allowed other paths in their user-level settings.

Hugging Face references (``owner/repo[:file]``) are fine: they resolve only from the local
cache or from downloads the user starts. Built-in and user presets are trusted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from lsp_server.core.errors import Refused
from lsp_server.presets.models import Preset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafetyPolicy:
    """User-level settings that decide what a workspace preset may reference.

    :param model_dirs: the user's model folders; model paths inside them are allowed.
    :param allow_workspace_model_paths: allow any local model path (user opted in).
    """

    model_dirs: tuple[Path, ...] = field(default_factory=tuple)
    allow_workspace_model_paths: bool = False

    @classmethod
    def create(
        cls, model_dirs: Sequence[Path | str] = (), allow_workspace_model_paths: bool = False
    ) -> SafetyPolicy:
        """Build a policy from any sequence of folders.

        :param model_dirs: the user's model folders.
        :param allow_workspace_model_paths: allow any local model path.
        """
        return cls(tuple(Path(d) for d in model_dirs), allow_workspace_model_paths)


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return Path(os.path.abspath(path))


def resolve_model_path(raw_path: str, base_folder: Path) -> Path | None:
    """Resolve a preset's local model path the way the server loads it.

    ``~`` is expanded, relative paths are relative to ``base_folder`` and symbolic links are
    followed, so a link inside the workspace that points outside counts as outside.

    :param raw_path: the path as written in the preset.
    :param base_folder: the folder relative paths start from (the workspace folder).
    :returns: the absolute path, or None for a Windows drive path on a non-Windows system.
    """
    text = raw_path
    if os.name != "nt":
        if PureWindowsPath(text).drive:
            return None
        text = text.replace("\\", "/")
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = base_folder / path
    return _resolve(path)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def workspace_refusal(preset: Preset, workspace_folder: Path, policy: SafetyPolicy) -> str | None:
    """Say why a workspace preset is refused, or return None when it is allowed.

    :param preset: a preset read from ``<workspace_folder>/.openllm/presets``.
    :param workspace_folder: the workspace folder that holds the preset.
    :param policy: the user's safety settings.
    :returns: a sentence a user can act on, or None.
    """
    ref = preset.model_ref()
    if ref is None or ref.kind == "huggingface":
        return None
    if ref.kind == "url":
        return (
            f'workspace preset "{preset.id}" points at a remote address ({ref.raw}); '
            "workspace presets may only use local models"
        )
    if policy.allow_workspace_model_paths:
        return None
    folder = _resolve(workspace_folder)
    resolved = resolve_model_path(ref.path or ref.raw, folder)
    if resolved is not None:
        allowed = [folder, *(_resolve(Path(os.path.expanduser(d))) for d in policy.model_dirs)]
        if any(_inside(resolved, root) for root in allowed):
            return None
    return (
        f'workspace preset "{preset.id}" points at model path "{ref.raw}", which is outside '
        "the workspace folder and your model folders; allow it by turning on workspace model "
        "paths in your user settings"
    )


def check_workspace_preset(preset: Preset, workspace_folder: Path, policy: SafetyPolicy) -> None:
    """Raise :class:`Refused` when a workspace preset breaks a safety rule.

    :param preset: a preset read from the workspace.
    :param workspace_folder: the workspace folder that holds the preset.
    :param policy: the user's safety settings.
    :raises Refused: with the reason and ``data={"presetId", "reason"}``.
    """
    reason = workspace_refusal(preset, workspace_folder, policy)
    if reason is not None:
        logger.warning("refused %s", reason)
        raise Refused(reason, data={"presetId": preset.id, "reason": reason})
