"""``openLlm/presets/*``: list, edit, select, import and export presets; lint preset files.

The plain-Python half lives in :mod:`lsp_server.presets` (``ls.presets()``). This module
adds the requests, the ``openLlm/presets/changed`` notification, diagnostics and key
completion on preset files, and the settings transformer through which the active preset
of the first workspace folder chooses the engine's model and context length.

Rule for the engine (one engine per server process): the active preset of the first
workspace folder applies. Its ``model`` (when set) replaces ``openLlm.model``, its
``contextLength`` (when set) replaces ``openLlm.engine.contextLength`` and its ``completion``
overrides (when set) replace the matching ``openLlm.completion.*`` values: choosing a preset
that names a model is an explicit choice, so it wins over the general setting.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from pathlib import Path
from typing import Any, Literal

from lsprotocol import types
from pydantic import Field, model_validator
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import ServerTextPosition

from lsp_server.config.settings import Settings
from lsp_server.core.errors import InvalidParams, ModelNotFound, OpenLlmError
from lsp_server.core.paths import atomic_write_text, normalize_folder_uri
from lsp_server.engine.resolve import resolve_model
from lsp_server.presets import (
    ActivePreset,
    KeyCompletion,
    Preset,
    PresetManager,
    complete_preset_keys,
)
from lsp_server.presets.loader import WORKSPACE_PRESETS_DIR
from lsp_server.presets.safety import resolve_model_path
from lsp_server.protocol import methods
from lsp_server.protocol.features.documents import DocumentEvent, on_document_event
from lsp_server.protocol.features.lifecycle import reapply_settings
from lsp_server.protocol.server import OpenLlmServer, Params, custom_request

log = logging.getLogger(__name__)

Layer = Literal["user", "workspace"]
ImportFormatParam = Literal["auto", "openllm", "lmstudio", "ollama"]

_SKIPPED_FILES = {"schema.json"}
_applied: weakref.WeakKeyDictionary[OpenLlmServer, dict[str, Any]] = weakref.WeakKeyDictionary()
"""What the active preset last set, per server (to reload only when it changes)."""
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_WORD_CHARS = re.compile(r"[A-Za-z0-9_$.+-]")


# ---------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------


class FolderParams(Params):
    """Params with an optional workspace folder (default: the first workspace folder)."""

    folder_uri: str | None = None


class IdParams(FolderParams):
    """Params naming one preset."""

    id: str = Field(min_length=1)


class CreateParams(FolderParams):
    """Params of ``openLlm/presets/create``."""

    preset: dict[str, Any]
    layer: Layer = "user"


class UpdateParams(IdParams):
    """Params of ``openLlm/presets/update``: a partial preset merged into the current one."""

    changes: dict[str, Any]


class DuplicateParams(IdParams):
    """Params of ``openLlm/presets/duplicate``."""

    new_id: str | None = None
    name: str | None = None
    layer: Layer = "user"


class ExportParams(IdParams):
    """Params of ``openLlm/presets/export``: optionally write the JSON to ``path``."""

    path: str | None = None


class ImportParams(FolderParams):
    """Params of ``openLlm/presets/import``: exactly one of ``text`` or ``path``."""

    text: str | None = None
    filename: str | None = None
    path: str | None = None
    format: ImportFormatParam = "auto"
    layer: Layer = "user"
    id: str | None = None
    save: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> ImportParams:
        if (self.text is None) == (self.path is None):
            raise ValueError("give exactly one of text or path")
        return self


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _manager(ls: OpenLlmServer) -> PresetManager:
    manager: PresetManager = ls.presets()
    return manager


def _folder(ls: OpenLlmServer, folder_uri: str | None) -> str | None:
    return folder_uri if folder_uri else ls.folder_for(None)


def _require_folder(ls: OpenLlmServer, folder_uri: str | None) -> str:
    folder = _folder(ls, folder_uri)
    if folder is None:
        raise InvalidParams("no workspace folder is open: open a folder or pass folderUri")
    return folder


def _folder_dir(folder_uri: str) -> Path | None:
    path = to_fs_path(folder_uri) if "://" in folder_uri else folder_uri
    return Path(path) if path else None


def model_spec(preset: Preset, folder_uri: str | None) -> str | None:
    """Return the ``openLlm.model`` value a preset's model reference stands for.

    Local paths are made absolute (relative ones start at the workspace folder, ``~`` is
    expanded); Hugging Face references are kept. Returns None when the preset keeps the
    current model.

    :raises ModelNotFound: for a remote (URL) model, which this server cannot load.
    """
    ref = preset.model_ref()
    if ref is None:
        return None
    if ref.kind == "huggingface":
        return ref.raw
    if ref.kind == "url":
        raise ModelNotFound(
            f'preset "{preset.id}" names a remote model ({ref.raw}); only local models '
            "(.gguf paths or cached Hugging Face references) can be loaded",
            data={"presetId": preset.id},
        )
    base = _folder_dir(folder_uri) if folder_uri else None
    resolved = resolve_model_path(ref.path or ref.raw, base or Path.cwd())
    return str(resolved) if resolved is not None else (ref.path or ref.raw)


def engine_folder(ls: OpenLlmServer) -> str | None:
    """Return the workspace folder whose active preset drives the engine (the first one)."""
    return ls.folder_for(None)


def preset_overrides(ls: OpenLlmServer) -> dict[str, Any]:
    """Return what the engine folder's active preset sets: ``model`` (an ``openLlm.model``
    value), ``contextLength`` and ``completion`` (overrides by field name); empty when none."""
    folder = engine_folder(ls)
    if folder is None:
        return {}
    try:
        preset = _manager(ls).active(folder).entry.preset
    except Exception:
        log.exception("cannot read the active preset of %s", folder)
        return {}
    overrides: dict[str, Any] = {}
    try:
        spec = model_spec(preset, folder)
    except ModelNotFound as exc:
        log.warning("%s", exc.message)
        spec = None
    if spec is not None:
        overrides["model"] = spec
    if preset.context_length is not None:
        overrides["contextLength"] = preset.context_length
    if preset.completion is not None:
        completion = preset.completion.model_dump(exclude_none=True)
        if completion:
            overrides["completion"] = completion
    return overrides


def preset_settings(ls: OpenLlmServer, settings: Settings) -> Settings:
    """Settings transformer: apply the engine folder's active preset (model, context,
    inline-completion overrides)."""
    overrides = preset_overrides(ls)
    _applied[ls] = overrides
    update: dict[str, Any] = {}
    if "model" in overrides:
        update["model"] = overrides["model"]
    if "contextLength" in overrides:
        update["engine"] = settings.engine.model_copy(
            update={"context_length": overrides["contextLength"]}
        )
    current = getattr(settings, "completion", None)
    if "completion" in overrides and current is not None:
        changes = {
            name: value
            for name, value in overrides["completion"].items()
            if name in type(current).model_fields
        }
        if changes:
            update["completion"] = current.model_copy(update=changes)
    if not update:
        return settings
    log.info("the active preset sets %s", ", ".join(sorted(update)))
    return settings.model_copy(update=update)


def _notify_changed(ls: OpenLlmServer, folder_uri: str | None) -> None:
    """Send ``openLlm/presets/changed`` for each affected workspace folder."""
    folders = [folder_uri] if folder_uri else ls.folder_uris()
    if not folders:
        ls.notify(methods.PRESETS_CHANGED, {"folderUri": None, "activeId": None})
        return
    manager = _manager(ls)
    for folder in folders:
        active = manager.active(folder)
        ls.notify(
            methods.PRESETS_CHANGED, {"folderUri": active.folder_uri, "activeId": active.entry.id}
        )


def _generations(ls: OpenLlmServer) -> dict[str, int]:
    if ls.engines is None:
        return {}
    return {role: state.generation for role, state in ls.engines.roles.items()}


async def _reapply(ls: OpenLlmServer, force: bool) -> bool:
    """Re-run the settings when the active preset's overrides changed (always when
    ``force``, which also retries a failed load); True when a load started."""
    if ls.engines is None:  # settings were never applied: initialized will do it
        return False
    if not force and preset_overrides(ls) == _applied.get(ls):
        return False
    before = _generations(ls)
    await reapply_settings(ls)
    return _generations(ls) != before


async def _changed(ls: OpenLlmServer, folder_uri: str | None, *, force: bool = False) -> bool:
    """After a change to presets: reload the engine when needed and notify the client."""
    reloading = await _reapply(ls, force)
    _notify_changed(ls, folder_uri)
    return reloading


async def check_model(preset: Preset, folder_uri: str | None) -> dict[str, Any] | None:
    """Return ``{kind, message}`` when the preset's model cannot be used here, else None."""
    try:
        spec = model_spec(preset, folder_uri)
        if spec is None:
            return None
        await asyncio.to_thread(resolve_model, spec)
    except OpenLlmError as exc:
        return {"kind": exc.kind, "message": exc.message}
    return None


def _active_dict(ls: OpenLlmServer, active: ActivePreset) -> dict[str, Any]:
    result = active.to_dict()
    result["appliesToEngine"] = active.folder_uri == _normalized(engine_folder(ls))
    return result


def _normalized(folder_uri: str | None) -> str | None:
    return normalize_folder_uri(folder_uri) if folder_uri is not None else None


# ---------------------------------------------------------------------------
# Preset files: diagnostics and key completion
# ---------------------------------------------------------------------------


def preset_file(ls: OpenLlmServer, uri: str) -> tuple[bool, str | None] | None:
    """Say whether ``uri`` is a preset file: ``(is_workspace, folder_uri)`` or None.

    Workspace preset files are ``<folder>/.openllm/presets/*.json``; user preset files are
    ``*.json`` directly in the user presets folder (no safety rules apply to those).
    """
    if not uri.startswith("file:"):
        return None
    fs_path = to_fs_path(uri)
    if not fs_path:
        return None
    path = Path(fs_path)
    if path.suffix.lower() != ".json" or path.name in _SKIPPED_FILES or path.name.startswith("."):
        return None
    if path.parent.name == WORKSPACE_PRESETS_DIR.name and (
        path.parent.parent.name == WORKSPACE_PRESETS_DIR.parent.name
    ):
        folder = path.parent.parent.parent
        return True, from_fs_path(str(folder))
    try:
        if path.parent.resolve() == _manager(ls).user_dir.resolve():
            return False, None
    except OSError:
        return None
    return None


def split_lines(text: str) -> list[str]:
    """Split like LSP (and the preset linter): CR LF, LF and CR end a line."""
    return _LINE_BREAK.split(text)


def _client_position(ls: OpenLlmServer, lines: list[str], line: int, col: int) -> types.Position:
    codec = ls.workspace.position_codec
    if line >= len(lines):
        line = len(lines) - 1
        col = len(lines[line])
    return codec.position_to_client_units(lines, ServerTextPosition(line, col))


def lint_document(ls: OpenLlmServer, uri: str) -> list[types.Diagnostic] | None:
    """Return LSP diagnostics for an open preset file (None when it is not one)."""
    kind = preset_file(ls, uri)
    if kind is None:
        return None
    is_workspace, folder = kind
    text = ls.workspace.get_text_document(uri).source
    found = _manager(ls).lint(text, folder if is_workspace else None)
    lines = split_lines(text)
    return [
        types.Diagnostic(
            range=types.Range(
                start=_client_position(ls, lines, d.line, d.col),
                end=_client_position(ls, lines, d.end_line, d.end_col),
            ),
            message=d.message,
            severity=types.DiagnosticSeverity(int(d.severity)),
            code=d.code,
            source="open-llm-lsp",
        )
        for d in found
    ]


async def on_document(ls: OpenLlmServer, event: DocumentEvent, uri: str) -> None:
    """Lint preset files as they change; clear on close; reload the engine on save."""
    if preset_file(ls, uri) is None:
        return
    if event == "close":
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )
        return
    diagnostics = lint_document(ls, uri) or []
    version = ls.workspace.get_text_document(uri).version
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
    )
    if event == "save":  # the file on disk changed: the list (or the active preset) did too
        kind = preset_file(ls, uri)
        await _changed(ls, kind[1] if kind and kind[0] else None)


def _completion_item(item: KeyCompletion, edit_range: types.Range) -> types.CompletionItem:
    text = item.insert_text or item.label
    return types.CompletionItem(
        label=item.label,
        kind=(
            types.CompletionItemKind.Property
            if item.kind == "key"
            else types.CompletionItemKind.Value
        ),
        detail=item.detail or None,
        documentation=item.documentation or None,
        filter_text=item.label,
        text_edit=types.TextEdit(range=edit_range, new_text=text),
    )


async def complete_keys(
    ls: OpenLlmServer, params: types.CompletionParams
) -> types.CompletionList | None:
    """Completion provider: keys and enum values in preset files, None elsewhere."""
    uri = params.text_document.uri
    if preset_file(ls, uri) is None:
        return None
    text = ls.workspace.get_text_document(uri).source
    lines = split_lines(text)
    pos = ls.workspace.position_codec.position_from_client_units(lines, params.position)
    line, col = pos.line, pos.character
    current = lines[line] if line < len(lines) else ""
    start = col
    while start > 0 and _WORD_CHARS.match(current[start - 1]):
        start -= 1
    edit_range = types.Range(
        start=_client_position(ls, lines, line, start),
        end=_client_position(ls, lines, line, col),
    )
    items = complete_preset_keys(text, line, col)
    return types.CompletionList(
        is_incomplete=False, items=[_completion_item(i, edit_range) for i in items]
    )


# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------


def register(ls: OpenLlmServer) -> None:
    """Register the preset requests, preset-file diagnostics and completion, and the
    settings transformer (the active preset's model and context length)."""
    ls.settings_transformers.append(preset_settings)
    on_document_event(ls, on_document)
    # First in the chain: it answers only for preset files and returns None elsewhere.
    ls.completion_providers.insert(0, complete_keys)

    @custom_request(ls, methods.PRESETS_LIST, FolderParams)
    async def on_list(ls: OpenLlmServer, p: FolderParams) -> dict[str, Any]:
        folders = [p.folder_uri] if p.folder_uri else ls.folder_uris()
        manager = _manager(ls)
        result = manager.list(folders).to_dict()
        result["active"] = [
            {"folderUri": a.folder_uri, "presetId": a.entry.id}
            for a in (manager.active(f) for f in folders)
        ]
        return result

    @custom_request(ls, methods.PRESETS_GET, IdParams)
    async def on_get(ls: OpenLlmServer, p: IdParams) -> dict[str, Any]:
        return _manager(ls).get(p.id, _folder(ls, p.folder_uri)).to_dict()

    @custom_request(ls, methods.PRESETS_CREATE, CreateParams)
    async def on_create(ls: OpenLlmServer, p: CreateParams) -> dict[str, Any]:
        folder = _folder(ls, p.folder_uri)
        entry = _manager(ls).create(p.preset, layer=p.layer, folder_uri=folder)
        await _changed(ls, folder)
        return entry.to_dict()

    @custom_request(ls, methods.PRESETS_UPDATE, UpdateParams)
    async def on_update(ls: OpenLlmServer, p: UpdateParams) -> dict[str, Any]:
        folder = _folder(ls, p.folder_uri)
        entry = _manager(ls).update(p.id, p.changes, folder_uri=folder)
        result = entry.to_dict()
        result["reloading"] = await _changed(ls, folder)
        return result

    @custom_request(ls, methods.PRESETS_DUPLICATE, DuplicateParams)
    async def on_duplicate(ls: OpenLlmServer, p: DuplicateParams) -> dict[str, Any]:
        folder = _folder(ls, p.folder_uri)
        entry = _manager(ls).duplicate(
            p.id, folder_uri=folder, new_id=p.new_id, name=p.name, layer=p.layer
        )
        await _changed(ls, folder)
        return entry.to_dict()

    @custom_request(ls, methods.PRESETS_DELETE, IdParams)
    async def on_delete(ls: OpenLlmServer, p: IdParams) -> dict[str, Any]:
        folder = _folder(ls, p.folder_uri)
        entry = _manager(ls).delete(p.id, folder_uri=folder)
        reloading = await _changed(ls, folder)
        active = _manager(ls).active(folder).entry.id if folder else None
        return {"deleted": entry.to_dict(), "activeId": active, "reloading": reloading}

    @custom_request(ls, methods.PRESETS_SELECT, IdParams)
    async def on_select(ls: OpenLlmServer, p: IdParams) -> dict[str, Any]:
        folder = _require_folder(ls, p.folder_uri)
        active = _manager(ls).select(folder, p.id)
        model_error = await check_model(active.entry.preset, active.folder_uri)
        result = _active_dict(ls, active)
        # Selecting again for the engine's folder retries a failed load (e.g. model downloaded).
        result["reloading"] = await _changed(
            ls, active.folder_uri, force=bool(result["appliesToEngine"])
        )
        result["modelError"] = model_error
        if model_error is not None:
            log.warning("preset %s: %s", p.id, model_error["message"])
        return result

    @custom_request(ls, methods.PRESETS_ACTIVE, FolderParams)
    async def on_active(ls: OpenLlmServer, p: FolderParams) -> dict[str, Any]:
        folder = _require_folder(ls, p.folder_uri)
        return _active_dict(ls, _manager(ls).active(folder))

    @custom_request(ls, methods.PRESETS_EXPORT, ExportParams)
    async def on_export(ls: OpenLlmServer, p: ExportParams) -> dict[str, Any]:
        text = _manager(ls).export(p.id, _folder(ls, p.folder_uri))
        path: str | None = None
        if p.path:
            target = Path(p.path).expanduser()
            if not target.is_absolute():
                raise InvalidParams("path must be absolute", data={"path": p.path})
            atomic_write_text(target, text)
            path = str(target)
        return {"id": p.id, "text": text, "filename": f"{p.id}.json", "path": path}

    @custom_request(ls, methods.PRESETS_IMPORT, ImportParams)
    async def on_import(ls: OpenLlmServer, p: ImportParams) -> dict[str, Any]:
        folder = _folder(ls, p.folder_uri)
        manager = _manager(ls)
        if p.path is not None:
            source = Path(p.path).expanduser()
            if not source.is_absolute():
                raise InvalidParams("path must be absolute", data={"path": p.path})
            imported = manager.import_file(
                source,
                format=p.format,
                layer=p.layer,
                folder_uri=folder,
                preset_id=p.id,
                save=p.save,
            )
        else:
            assert p.text is not None
            imported = manager.import_text(
                p.text,
                format=p.format,
                filename=p.filename,
                layer=p.layer,
                folder_uri=folder,
                preset_id=p.id,
                save=p.save,
            )
        result = imported.to_dict()
        result["saved"] = p.save
        result["entry"] = None
        if p.save:
            result["entry"] = manager.get(imported.preset.id, folder).to_dict()
            await _changed(ls, folder)
        return result
