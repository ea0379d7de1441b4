"""Preset layers, selection and editing.

Three layers, lowest first; the same id in a higher layer overrides the lower one:

1. built-in presets, read-only: ``lsp_server/presets/builtin/*.json`` when installed from a
   wheel, else ``<repo>/presets/*.json``;
2. user presets: ``data_dir()/presets/*.json``;
3. workspace presets: ``<folder>/.openllm/presets/*.json`` (committed and shared; subject
   to the rules in :mod:`lsp_server.presets.safety`).

The active preset of each workspace folder is kept in ``data_dir()/state/active-presets.json``.
Malformed files never break a listing: they are reported as problems and never rewritten.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from pydantic import ValidationError

from lsp_server.core.errors import Conflict, InvalidParams, NotFound, Refused, StorageError
from lsp_server.core.paths import atomic_write_text, data_dir, folder_key, normalize_folder_uri
from lsp_server.presets.importers import (
    ImportFormat,
    ImportResult,
    import_preset_file,
    import_preset_text,
)
from lsp_server.presets.lint import Diagnostic, Severity, lint_preset_text
from lsp_server.presets.models import DEFAULT_PRESET_ID, ID_MAX_LENGTH, Preset, slugify
from lsp_server.presets.safety import SafetyPolicy, check_workspace_preset, workspace_refusal
from lsp_server.presets.schema import repo_presets_dir

logger = logging.getLogger(__name__)

WORKSPACE_PRESETS_DIR = Path(".openllm") / "presets"
"""Where workspace presets live, relative to a workspace folder."""

STATE_FILE = Path("state") / "active-presets.json"
"""Where the active preset of each folder is kept, relative to ``data_dir()``."""

_MAX_FILE_BYTES = 1_000_000
_SKIPPED_FILES = {"schema.json"}


class PresetSource(StrEnum):
    """The layer a preset comes from (lowest first)."""

    BUILTIN = "builtin"
    USER = "user"
    WORKSPACE = "workspace"


def builtin_presets_dir() -> Path:
    """Return the folder of built-in presets: packaged data first, else ``<repo>/presets``."""
    packaged = Path(__file__).resolve().parent / "builtin"
    if packaged.is_dir() and any(packaged.glob("*.json")):
        return packaged
    return repo_presets_dir()


def folder_path(folder_uri: str) -> Path | None:
    """Return the local path of a workspace folder URI (None for non-``file`` URIs).

    :param folder_uri: a ``file://`` URI or a plain path.
    """
    uri = normalize_folder_uri(folder_uri)
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(url2pathname(parsed.path))


@dataclass(frozen=True)
class PresetOrigin:
    """Where one definition of a preset id lives."""

    source: PresetSource
    path: Path | None
    folder_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "source": self.source.value,
            "path": str(self.path) if self.path else None,
            "folderUri": self.folder_uri,
        }


@dataclass(frozen=True)
class PresetEntry:
    """A preset as listed: the preset, where it comes from and what it overrides.

    ``refused`` holds the reason when a workspace preset breaks a safety rule; such a preset
    is listed but cannot be selected. ``overridden_in`` lists the workspace folders where a
    workspace preset with the same id replaces this (built-in or user) preset.
    """

    preset: Preset
    source: PresetSource
    path: Path | None
    folder_uri: str | None = None
    overrides: tuple[PresetOrigin, ...] = ()
    overridden_in: tuple[str, ...] = ()
    refused: str | None = None

    @property
    def id(self) -> str:
        """The preset id."""
        return self.preset.id

    @property
    def read_only(self) -> bool:
        """True for built-in presets, which cannot be updated or deleted."""
        return self.source is PresetSource.BUILTIN

    def origin(self) -> PresetOrigin:
        """Return where this definition lives."""
        return PresetOrigin(self.source, self.path, self.folder_uri)

    def snapshot(self) -> dict[str, Any]:
        """Return an independent plain-dict copy of the preset (to store with a chat)."""
        return self.preset.snapshot()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict for the client (camelCase keys)."""
        return {
            "id": self.preset.id,
            "name": self.preset.name,
            "description": self.preset.description,
            "tags": list(self.preset.tags),
            "source": self.source.value,
            "path": str(self.path) if self.path else None,
            "folderUri": self.folder_uri,
            "readOnly": self.read_only,
            "overrides": [o.to_dict() for o in self.overrides],
            "overriddenIn": list(self.overridden_in),
            "refused": self.refused,
            "preset": self.preset.to_dict(),
        }


@dataclass(frozen=True)
class PresetProblem:
    """A preset file that could not be used (bad JSON, invalid values, duplicate id)."""

    path: Path
    source: PresetSource
    message: str
    line: int | None = None
    col: int | None = None
    folder_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict; ``line``/``col`` are zero-based."""
        return {
            "path": str(self.path),
            "source": self.source.value,
            "message": self.message,
            "line": self.line,
            "col": self.col,
            "folderUri": self.folder_uri,
        }


@dataclass
class PresetListing:
    """The result of :meth:`PresetManager.list`."""

    presets: list[PresetEntry] = field(default_factory=list)
    problems: list[PresetProblem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "presets": [p.to_dict() for p in self.presets],
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass(frozen=True)
class ActivePreset:
    """The active preset of a workspace folder.

    :param entry: the preset in use.
    :param folder_uri: the normalized folder URI.
    :param requested_id: the id the user selected (None if never selected).
    :param fallback: True when the selected preset could not be used and the default is used.
    :param reason: why the fallback happened.
    """

    entry: PresetEntry
    folder_uri: str
    requested_id: str | None
    fallback: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "folderUri": self.folder_uri,
            "presetId": self.entry.id,
            "requestedId": self.requested_id,
            "fallback": self.fallback,
            "reason": self.reason,
            "entry": self.entry.to_dict(),
        }


_Chain = list[PresetEntry]
_Problems = list[PresetProblem]
_Diagnostics = list[Diagnostic]


def _fallback_default() -> Preset:
    """Build the default preset used when even the built-in file is missing."""
    return Preset.model_validate(
        {
            "id": DEFAULT_PRESET_ID,
            "name": "Coding assistant",
            "description": "General coding help.",
            "systemPrompt": "You are a helpful coding assistant. Answer briefly and correctly.",
        }
    )


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]


def _validate(data: Mapping[str, Any] | Preset) -> Preset:
    if isinstance(data, Preset):
        return data
    try:
        return Preset.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidParams(
            f"invalid preset: {where}: {first['msg']}"
            if where
            else f"invalid preset: {first['msg']}",
            data={"errors": _validation_details(exc)},
        ) from exc


def _deep_merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class PresetManager:
    """Lists, resolves, edits and selects presets across the three layers.

    Files are read on every call (they are few and small), so edits made outside the server
    show up at once; built-in presets are read once.

    :param builtin_dir: folder of built-in presets (default: :func:`builtin_presets_dir`).
    :param user_dir: folder of user presets (default: ``data_dir()/presets``).
    :param state_file: where active selections are kept (default:
        ``data_dir()/state/active-presets.json``).
    :param policy: safety settings for workspace presets.
    """

    def __init__(
        self,
        *,
        builtin_dir: Path | None = None,
        user_dir: Path | None = None,
        state_file: Path | None = None,
        policy: SafetyPolicy | None = None,
    ) -> None:
        self._builtin_dir = builtin_dir
        self._user_dir = user_dir
        self._state_file = state_file
        self.policy = policy or SafetyPolicy()
        self._lock = threading.RLock()
        self._builtin_cache: tuple[dict[str, PresetEntry], _Problems] | None = None

    # -- configuration -----------------------------------------------------------------

    def set_policy(
        self, model_dirs: Sequence[Path | str] = (), allow_workspace_model_paths: bool = False
    ) -> None:
        """Update the safety settings (call when user settings change).

        :param model_dirs: the user's model folders.
        :param allow_workspace_model_paths: allow workspace presets to use any model path.
        """
        self.policy = SafetyPolicy.create(model_dirs, allow_workspace_model_paths)

    @property
    def user_dir(self) -> Path:
        """The folder of user presets."""
        return self._user_dir or data_dir() / "presets"

    @property
    def state_file(self) -> Path:
        """The file that keeps each folder's active preset."""
        return self._state_file or data_dir() / STATE_FILE

    @staticmethod
    def workspace_dir(folder_uri: str) -> Path:
        """Return ``<folder>/.openllm/presets`` for a workspace folder.

        :param folder_uri: the workspace folder URI or path.
        :raises InvalidParams: for a folder that is not on the local file system.
        """
        folder = folder_path(folder_uri)
        if folder is None:
            raise InvalidParams(f"workspace folder {folder_uri} is not a local folder")
        return folder / WORKSPACE_PRESETS_DIR

    # -- reading -----------------------------------------------------------------------

    def _read_dir(
        self, directory: Path, source: PresetSource, folder_uri: str | None, problems: _Problems
    ) -> dict[str, PresetEntry]:
        entries: dict[str, PresetEntry] = {}
        if not directory.is_dir():
            return entries
        folder = folder_path(folder_uri) if folder_uri else None
        for path in sorted(directory.glob("*.json")):
            if path.name in _SKIPPED_FILES or path.name.startswith(".") or not path.is_file():
                continue
            preset = self._read_file(path, source, folder_uri, problems)
            if preset is None:
                continue
            if preset.id in entries:
                other = entries[preset.id].path
                problems.append(
                    PresetProblem(
                        path,
                        source,
                        f'duplicate id "{preset.id}" (also in {other}); file ignored',
                        folder_uri=folder_uri,
                    )
                )
                continue
            refused = None
            if source is PresetSource.WORKSPACE and folder is not None:
                refused = workspace_refusal(preset, folder, self.policy)
            entries[preset.id] = PresetEntry(preset, source, path, folder_uri, refused=refused)
        return entries

    @staticmethod
    def _read_file(
        path: Path, source: PresetSource, folder_uri: str | None, problems: _Problems
    ) -> Preset | None:
        try:
            if path.stat().st_size > _MAX_FILE_BYTES:
                problems.append(
                    PresetProblem(
                        path, source, "file too large for a preset", folder_uri=folder_uri
                    )
                )
                return None
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(
                PresetProblem(path, source, f"cannot read the file: {exc}", folder_uri=folder_uri)
            )
            return None
        try:
            return Preset.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValidationError):
            pass
        errors = [d for d in lint_preset_text(text) if d.severity is Severity.ERROR]
        first: Diagnostic | None = errors[0] if errors else None
        message = (
            "; ".join(f"line {d.line + 1}: {d.message}" for d in errors[:3]) or "invalid preset"
        )
        if len(errors) > 3:
            message += f" (and {len(errors) - 3} more)"
        logger.warning("ignoring preset file %s: %s", path, message)
        problems.append(
            PresetProblem(
                path,
                source,
                message,
                first.line if first else None,
                first.col if first else None,
                folder_uri,
            )
        )
        return None

    def _builtins(self) -> tuple[dict[str, PresetEntry], _Problems]:
        if self._builtin_cache is None:
            problems: _Problems = []
            entries = self._read_dir(
                self._builtin_dir or builtin_presets_dir(), PresetSource.BUILTIN, None, problems
            )
            self._builtin_cache = (entries, problems)
        return self._builtin_cache

    def _global(self, problems: _Problems) -> dict[str, _Chain]:
        """Return id -> definitions (highest first) across built-in and user layers."""
        builtin, builtin_problems = self._builtins()
        problems.extend(builtin_problems)
        user = self._read_dir(self.user_dir, PresetSource.USER, None, problems)
        chains: dict[str, _Chain] = {}
        for layer in (builtin, user):
            for pid, entry in layer.items():
                chains.setdefault(pid, []).insert(0, entry)
        return chains

    def _chains(
        self, folder_uri: str | None, problems: _Problems | None = None
    ) -> dict[str, _Chain]:
        """Return id -> definitions (highest first) for one folder (or none)."""
        problems = problems if problems is not None else []
        chains = self._global(problems)
        if folder_uri is not None:
            uri = normalize_folder_uri(folder_uri)
            if folder_path(uri) is not None:
                workspace = self._read_dir(
                    self.workspace_dir(uri), PresetSource.WORKSPACE, uri, problems
                )
                for pid, entry in workspace.items():
                    chains.setdefault(pid, []).insert(0, entry)
        return chains

    @staticmethod
    def _top(chain: _Chain) -> PresetEntry:
        return replace(chain[0], overrides=tuple(e.origin() for e in chain[1:]))

    def list(self, folders: Iterable[str] = ()) -> PresetListing:
        """List the presets visible from the given workspace folders, with problems.

        Built-in and user presets appear once (a user preset hides a built-in one with the same
        id); each folder's workspace presets appear with their ``folder_uri``. Refused
        workspace presets are listed with their reason; malformed files are in ``problems``.

        :param folders: workspace folder URIs (or paths).
        """
        problems: _Problems = []
        global_chains = self._global(problems)
        overridden: dict[str, list[str]] = {}
        workspace_entries: _Chain = []
        for folder in dict.fromkeys(normalize_folder_uri(f) for f in folders):
            if folder_path(folder) is None:
                continue
            layer = self._read_dir(
                self.workspace_dir(folder), PresetSource.WORKSPACE, folder, problems
            )
            for pid, entry in layer.items():
                lower = global_chains.get(pid, [])
                workspace_entries.append(self._top([entry, *lower]))
                if lower:
                    overridden.setdefault(pid, []).append(folder)
        entries = [
            replace(self._top(chain), overridden_in=tuple(overridden.get(pid, ())))
            for pid, chain in global_chains.items()
        ]
        entries.extend(workspace_entries)
        entries.sort(
            key=lambda e: (
                e.id != DEFAULT_PRESET_ID,
                e.preset.name.casefold(),
                e.id,
                e.folder_uri or "",
            )
        )
        return PresetListing(entries, problems)

    def get(self, preset_id: str, folder_uri: str | None = None) -> PresetEntry:
        """Return the preset a folder sees for an id (workspace > user > built-in).

        :param preset_id: the preset id.
        :param folder_uri: the workspace folder, or None for user and built-in presets only.
        :raises NotFound: when no layer defines the id.
        """
        chain = self._chains(folder_uri).get(preset_id)
        if not chain:
            raise NotFound(f'no preset with id "{preset_id}"', data={"presetId": preset_id})
        return self._top(chain)

    # -- writing -----------------------------------------------------------------------

    def _layer_of(self, layer: PresetSource | str) -> PresetSource:
        try:
            source = PresetSource(layer)
        except ValueError as exc:
            raise InvalidParams(f"unknown preset layer {layer!r}; use user or workspace") from exc
        if source is PresetSource.BUILTIN:
            raise Conflict("built-in presets are read-only; create a user preset instead")
        return source

    def _target_dir(self, layer: PresetSource, folder_uri: str | None) -> Path:
        if layer is PresetSource.WORKSPACE:
            if folder_uri is None:
                raise InvalidParams("a workspace preset needs a workspace folder")
            return self.workspace_dir(folder_uri)
        return self.user_dir

    def _check_name(self, preset: Preset, chains: Mapping[str, _Chain]) -> None:
        wanted = preset.name.casefold()
        for pid, chain in chains.items():
            existing = chain[0].preset.name
            if pid != preset.id and existing.casefold() == wanted:
                raise Conflict(
                    f'a preset named "{existing}" already exists (id "{pid}")',
                    data={"presetId": pid, "name": existing},
                )

    def _check_safe(self, preset: Preset, layer: PresetSource, folder_uri: str | None) -> None:
        if layer is PresetSource.WORKSPACE and folder_uri is not None:
            folder = folder_path(folder_uri)
            if folder is not None:
                check_workspace_preset(preset, folder, self.policy)

    def _write(self, path: Path, preset: Preset) -> None:
        text = json.dumps(preset.to_file_dict(), indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(path, text)
        logger.info("wrote preset %s to %s", preset.id, path)

    def create(
        self,
        preset: Preset | Mapping[str, Any],
        *,
        layer: PresetSource | str = PresetSource.USER,
        folder_uri: str | None = None,
    ) -> PresetEntry:
        """Save a new preset in the user or workspace layer.

        A preset may reuse the id of a preset in a lower layer to override it.

        :param preset: the preset, or its wire dict (camelCase keys).
        :param layer: ``"user"`` or ``"workspace"``.
        :param folder_uri: the workspace folder (required for the workspace layer).
        :raises InvalidParams: when the preset is malformed.
        :raises Conflict: when the id exists in that layer or the name is taken.
        :raises Refused: when a workspace preset breaks a safety rule.
        :raises StorageError: when the file cannot be written.
        """
        source = self._layer_of(layer)
        valid = _validate(preset)
        uri = normalize_folder_uri(folder_uri) if folder_uri is not None else None
        directory = self._target_dir(source, uri)
        with self._lock:
            chains = self._chains(uri)
            existing = chains.get(valid.id, [])
            if any(e.source is source for e in existing):
                raise Conflict(
                    f'a {source.value} preset with id "{valid.id}" already exists',
                    data={"presetId": valid.id},
                )
            self._check_name(valid, chains)
            self._check_safe(valid, source, uri)
            path = directory / f"{valid.id}.json"
            if path.exists():
                raise Conflict(
                    f"{path} already exists but is not a valid preset; fix or remove it first",
                    data={"path": str(path)},
                )
            self._write(path, valid)
        return self.get(valid.id, uri)

    def update(
        self, preset_id: str, changes: Mapping[str, Any] | Preset, *, folder_uri: str | None = None
    ) -> PresetEntry:
        """Change a user or workspace preset (the one the folder sees for this id).

        :param preset_id: the preset to change.
        :param changes: a partial wire dict merged into the preset (nested objects are
            merged; null clears an optional value), or a whole :class:`Preset`.
        :param folder_uri: the workspace folder, for workspace presets.
        :raises NotFound: unknown id.
        :raises Conflict: for a built-in preset (read-only) or a name already taken.
        :raises InvalidParams: when the result is not a valid preset or the id changes.
        :raises Refused: when a workspace preset would break a safety rule.
        :raises StorageError: when the file cannot be written.
        """
        uri = normalize_folder_uri(folder_uri) if folder_uri is not None else None
        with self._lock:
            chains = self._chains(uri)
            chain = chains.get(preset_id)
            if not chain:
                raise NotFound(f'no preset with id "{preset_id}"', data={"presetId": preset_id})
            top = chain[0]
            if top.read_only:
                raise Conflict(
                    f'preset "{preset_id}" is built-in and read-only; duplicate it, '
                    "or create a user preset with the same id to override it",
                    data={"presetId": preset_id},
                )
            if isinstance(changes, Preset):
                updated = changes
            else:
                updated = _validate(_deep_merge(top.preset.to_file_dict(), changes))
            if updated.id != preset_id:
                raise InvalidParams(
                    "a preset's id cannot be changed; duplicate it instead",
                    data={"presetId": preset_id},
                )
            self._check_name(updated, chains)
            self._check_safe(updated, top.source, top.folder_uri)
            if top.path is None:
                raise Conflict(f'preset "{preset_id}" has no file to update')
            self._write(top.path, updated)
        return self.get(preset_id, uri)

    def _unique_id(self, base: str, taken: Iterable[str]) -> str:
        used = set(taken)
        base = slugify(base)[: ID_MAX_LENGTH - 4].rstrip("-") or "preset"
        if base not in used:
            return base
        n = 2
        while f"{base}-{n}" in used:
            n += 1
        return f"{base}-{n}"

    @staticmethod
    def _unique_name(base: str, chains: Mapping[str, _Chain]) -> str:
        used = {c[0].preset.name.casefold() for c in chains.values()}
        base = base[:72]
        if base.casefold() not in used:
            return base
        n = 2
        while f"{base} ({n})".casefold() in used:
            n += 1
        return f"{base} ({n})"

    def duplicate(
        self,
        preset_id: str,
        *,
        folder_uri: str | None = None,
        new_id: str | None = None,
        name: str | None = None,
        layer: PresetSource | str = PresetSource.USER,
    ) -> PresetEntry:
        """Copy a preset (any layer) into the user or workspace layer.

        :param preset_id: the preset to copy.
        :param folder_uri: the workspace folder (to see its presets, or to write there).
        :param new_id: the copy's id (default: ``<id>-copy``, made unique).
        :param name: the copy's name (default: ``Copy of <name>``, made unique).
        :param layer: where to save the copy.
        :raises NotFound: unknown id.
        :raises Conflict: when ``new_id`` or ``name`` is taken.
        """
        uri = normalize_folder_uri(folder_uri) if folder_uri is not None else None
        source = self.get(preset_id, uri)
        chains = self._chains(uri)
        data = source.preset.to_file_dict()
        data["id"] = new_id or self._unique_id(f"{preset_id}-copy", chains)
        data["name"] = name or self._unique_name(f"Copy of {source.preset.name}", chains)
        return self.create(data, layer=layer, folder_uri=uri)

    def delete(self, preset_id: str, *, folder_uri: str | None = None) -> PresetEntry:
        """Delete the user or workspace preset a folder sees for this id.

        A lower-layer preset with the same id (e.g. the built-in one) becomes visible again.

        :param preset_id: the preset to delete.
        :param folder_uri: the workspace folder, for workspace presets.
        :returns: the deleted entry.
        :raises NotFound: unknown id.
        :raises Conflict: for a built-in preset (read-only).
        :raises StorageError: when the file cannot be removed.
        """
        uri = normalize_folder_uri(folder_uri) if folder_uri is not None else None
        with self._lock:
            entry = self.get(preset_id, uri)
            if entry.read_only or entry.path is None:
                raise Conflict(
                    f'preset "{preset_id}" is built-in and read-only; it cannot be deleted',
                    data={"presetId": preset_id},
                )
            try:
                entry.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(
                    f"cannot delete {entry.path}: {exc.strerror or exc}",
                    data={"path": str(entry.path)},
                ) from exc
            logger.info("deleted preset %s (%s)", preset_id, entry.path)
        return entry

    # -- selection ---------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        path = self.state_file
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable %s: %s", path, exc)
            return {}
        folders = data.get("folders") if isinstance(data, dict) else None
        return folders if isinstance(folders, dict) else {}

    def select(self, folder_uri: str, preset_id: str) -> ActivePreset:
        """Make a preset the active one for a workspace folder, and remember it.

        :param folder_uri: the workspace folder URI (or path).
        :param preset_id: the preset to activate.
        :raises NotFound: unknown id.
        :raises Refused: the folder's preset with this id breaks a safety rule.
        :raises StorageError: the selection cannot be saved.
        """
        uri = normalize_folder_uri(folder_uri)
        entry = self.get(preset_id, uri)
        if entry.refused is not None:
            raise Refused(entry.refused, data={"presetId": preset_id, "reason": entry.refused})
        with self._lock:
            folders = self._read_state()
            folders[folder_key(uri)] = {"folderUri": uri, "presetId": preset_id}
            text = json.dumps({"version": 1, "folders": folders}, indent=2, sort_keys=True)
            atomic_write_text(self.state_file, text + "\n")
        logger.info("selected preset %s for %s", preset_id, uri)
        return ActivePreset(entry, uri, preset_id)

    def active(self, folder_uri: str) -> ActivePreset:
        """Return a folder's active preset (default ``coding-assistant``).

        When the remembered preset no longer exists or is refused, the default is returned
        with ``fallback=True`` and the reason.

        :param folder_uri: the workspace folder URI (or path).
        """
        uri = normalize_folder_uri(folder_uri)
        record = self._read_state().get(folder_key(uri))
        requested = record.get("presetId") if isinstance(record, dict) else None
        requested = requested if isinstance(requested, str) else None
        chains = self._chains(uri)
        reason: str | None = None
        if requested is not None:
            chain = chains.get(requested)
            if chain and chain[0].refused is None:
                return ActivePreset(self._top(chain), uri, requested)
            if chain:
                reason = f"{chain[0].refused}; using the default preset"
            else:
                reason = f'preset "{requested}" no longer exists; using the default preset'
        default_chain = chains.get(DEFAULT_PRESET_ID, [])
        usable = [i for i, e in enumerate(default_chain) if e.refused is None]
        if usable:
            entry = self._top(default_chain[usable[0] :])
            if usable[0] > 0 and reason is None:
                reason = f"{default_chain[0].refused}; using the built-in default"
        else:
            entry = PresetEntry(_fallback_default(), PresetSource.BUILTIN, None)
        if reason:
            logger.warning("folder %s: %s", uri, reason)
        return ActivePreset(entry, uri, requested, fallback=reason is not None, reason=reason)

    # -- import / export ---------------------------------------------------------------

    def export(self, preset_id: str, folder_uri: str | None = None) -> str:
        """Return a preset as JSON text to share (importable with :meth:`import_text`).

        :param preset_id: the preset to export.
        :param folder_uri: the workspace folder whose presets are visible.
        :raises NotFound: unknown id.
        """
        data = self.get(preset_id, folder_uri).preset.to_file_dict()
        data.pop("$schema", None)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def _save_import(
        self, result: ImportResult, layer: PresetSource | str, folder_uri: str | None, save: bool
    ) -> ImportResult:
        source = self._layer_of(layer)
        uri = normalize_folder_uri(folder_uri) if folder_uri is not None else None
        chains = self._chains(uri)
        data = result.preset.to_file_dict()
        if data["id"] in chains:
            new_id = self._unique_id(data["id"], chains)
            result.warnings.append(f'id "{data["id"]}" is taken; imported as "{new_id}"')
            data["id"] = new_id
        new_name = self._unique_name(data["name"], chains)
        if new_name != data["name"]:
            result.warnings.append(f'name "{data["name"]}" is taken; imported as "{new_name}"')
            data["name"] = new_name
        result.preset = _validate(data)
        if save:
            self.create(result.preset, layer=source, folder_uri=uri)
        return result

    def import_text(
        self,
        text: str,
        *,
        format: ImportFormat = "auto",
        filename: str | None = None,
        layer: PresetSource | str = PresetSource.USER,
        folder_uri: str | None = None,
        preset_id: str | None = None,
        save: bool = True,
    ) -> ImportResult:
        """Import a preset (ours, LM Studio or Ollama Modelfile) and save it.

        A taken id or name gets a suffix (reported in ``warnings``).

        :param text: the file's text.
        :param format: ``"auto"``, ``"openllm"``, ``"lmstudio"`` or ``"ollama"``.
        :param filename: the file's name (helps detection and naming).
        :param layer: ``"user"`` or ``"workspace"``.
        :param folder_uri: the workspace folder, for the workspace layer.
        :param preset_id: the id to give the preset.
        :param save: False to only convert (preview) without writing.
        :raises InvalidParams: when the text cannot be imported.
        :raises Refused: when a workspace import breaks a safety rule.
        """
        result = import_preset_text(text, format=format, filename=filename, preset_id=preset_id)
        return self._save_import(result, layer, folder_uri, save)

    def import_file(
        self,
        path: Path,
        *,
        format: ImportFormat = "auto",
        layer: PresetSource | str = PresetSource.USER,
        folder_uri: str | None = None,
        preset_id: str | None = None,
        save: bool = True,
    ) -> ImportResult:
        """Import a preset file and save it (see :meth:`import_text`).

        :param path: the file to import.
        :param format: the format, or ``"auto"``.
        :param layer: ``"user"`` or ``"workspace"``.
        :param folder_uri: the workspace folder, for the workspace layer.
        :param preset_id: the id to give the preset.
        :param save: False to only convert without writing.
        """
        result = import_preset_file(path, format=format, preset_id=preset_id)
        return self._save_import(result, layer, folder_uri, save)

    # -- linting -----------------------------------------------------------------------

    def lint(self, text: str, folder_uri: str | None = None) -> _Diagnostics:
        """Lint a preset file's text, with the safety rules when it is a workspace preset.

        :param text: the file's text.
        :param folder_uri: the workspace folder holding the file (None for user presets).
        """
        folder = folder_path(folder_uri) if folder_uri is not None else None
        return lint_preset_text(text, workspace_folder=folder, policy=self.policy)
