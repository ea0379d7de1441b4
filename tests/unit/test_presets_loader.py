"""Preset layers, selection, editing, malformed files and workspace safety, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lsp_server.core.errors import Conflict, InvalidParams, NotFound, Refused, StorageError
from lsp_server.core.paths import normalize_folder_uri
from lsp_server.presets import (
    DEFAULT_PRESET_ID,
    PresetManager,
    PresetSource,
    SafetyPolicy,
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("OPEN_LLM_LSP_DATA_DIR", str(path))
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def manager(data_dir: Path) -> PresetManager:
    return PresetManager()


def _write(path: Path, data: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    path.write_text(text, encoding="utf-8")
    return path


def _ws_preset(workspace: Path, data: dict[str, Any], name: str | None = None) -> Path:
    return _write(workspace / ".openllm" / "presets" / f"{name or data['id']}.json", data)


def test_builtins_are_listed_with_the_default_first(manager: PresetManager) -> None:
    listing = manager.list()
    assert listing.problems == []
    assert listing.presets[0].id == DEFAULT_PRESET_ID
    assert all(e.source is PresetSource.BUILTIN and e.read_only for e in listing.presets)
    wire = listing.to_dict()
    assert wire["presets"][0]["source"] == "builtin"
    assert wire["presets"][0]["preset"]["sampling"]["temperature"] == 0.2


def test_layers_override_by_id(manager: PresetManager, data_dir: Path, workspace: Path) -> None:
    user_file = _write(
        data_dir / "presets" / "coding-assistant.json",
        {"id": "coding-assistant", "name": "My coding assistant", "sampling": {"temperature": 0.5}},
    )
    _ws_preset(
        workspace,
        {"id": "coding-assistant", "name": "Team assistant", "systemPrompt": "Use our style."},
    )
    _ws_preset(workspace, {"id": "team-only", "name": "Team only"})

    assert manager.get("coding-assistant").preset.name == "My coding assistant"
    entry = manager.get("coding-assistant", workspace.as_uri())
    assert entry.source is PresetSource.WORKSPACE
    assert entry.preset.name == "Team assistant"
    assert [o.source for o in entry.overrides] == [PresetSource.USER, PresetSource.BUILTIN]
    assert entry.overrides[0].path == user_file

    listing = manager.list([workspace.as_uri()])
    by_key = {(e.id, e.source): e for e in listing.presets}
    user_entry = by_key[("coding-assistant", PresetSource.USER)]
    assert [o.source for o in user_entry.overrides] == [PresetSource.BUILTIN]
    assert user_entry.overridden_in == (normalize_folder_uri(str(workspace)),)
    assert ("coding-assistant", PresetSource.BUILTIN) not in by_key
    assert by_key[("team-only", PresetSource.WORKSPACE)].folder_uri == workspace.as_uri()
    # without the folder, its workspace presets are not visible
    with pytest.raises(NotFound):
        manager.get("team-only")


def test_select_persists_across_instances(
    manager: PresetManager, data_dir: Path, workspace: Path
) -> None:
    assert manager.active(workspace.as_uri()).entry.id == DEFAULT_PRESET_ID
    assert manager.active(workspace.as_uri()).fallback is False
    result = manager.select(str(workspace), "code-reviewer")  # plain path works too
    assert result.entry.id == "code-reviewer"
    state = data_dir / "state" / "active-presets.json"
    assert state.exists()
    assert not list(state.parent.glob("*.tmp"))
    again = PresetManager().active(workspace.as_uri() + "/")
    assert again.entry.id == "code-reviewer"
    assert again.requested_id == "code-reviewer"
    other = workspace.parent / "other"
    other.mkdir()
    assert PresetManager().active(other.as_uri()).entry.id == DEFAULT_PRESET_ID


def test_active_falls_back_when_the_selected_preset_is_gone(
    manager: PresetManager, workspace: Path
) -> None:
    manager.create({"id": "temp", "name": "Temporary"})
    manager.select(workspace.as_uri(), "temp")
    manager.delete("temp")
    active = manager.active(workspace.as_uri())
    assert active.entry.id == DEFAULT_PRESET_ID
    assert active.fallback is True
    assert active.requested_id == "temp"
    assert active.reason is not None and "temp" in active.reason
    assert active.to_dict()["fallback"] is True


def test_corrupt_state_file_is_ignored(
    manager: PresetManager, data_dir: Path, workspace: Path
) -> None:
    _write(data_dir / "state" / "active-presets.json", "{not json")
    assert manager.active(workspace.as_uri()).entry.id == DEFAULT_PRESET_ID
    manager.select(workspace.as_uri(), "concise")
    assert manager.active(workspace.as_uri()).entry.id == "concise"


def test_select_unknown_id(manager: PresetManager, workspace: Path) -> None:
    with pytest.raises(NotFound, match="nope"):
        manager.select(workspace.as_uri(), "nope")


def test_create_update_duplicate_delete(manager: PresetManager, data_dir: Path) -> None:
    entry = manager.create({"id": "mine", "name": "Mine", "sampling": {"temperature": 0.3}})
    assert entry.source is PresetSource.USER
    assert entry.path == data_dir / "presets" / "mine.json"
    snapshot = entry.snapshot()

    updated = manager.update("mine", {"sampling": {"maxTokens": 99}, "description": "d"})
    assert updated.preset.sampling.max_tokens == 99
    assert updated.preset.sampling.temperature == 0.3  # nested objects are merged
    assert snapshot["sampling"]["maxTokens"] == 1024  # the chat's snapshot did not change
    assert snapshot["description"] == ""

    copy = manager.duplicate("mine")
    assert (copy.id, copy.preset.name) == ("mine-copy", "Copy of Mine")
    copy2 = manager.duplicate("mine")
    assert (copy2.id, copy2.preset.name) == ("mine-copy-2", "Copy of Mine (2)")
    builtin_copy = manager.duplicate("code-reviewer", new_id="strict-review", name="Strict")
    assert builtin_copy.preset.system_prompt == manager.get("code-reviewer").preset.system_prompt

    deleted = manager.delete("mine")
    assert deleted.id == "mine"
    assert not (data_dir / "presets" / "mine.json").exists()
    with pytest.raises(NotFound):
        manager.get("mine")


def test_user_override_of_builtin_can_be_deleted(manager: PresetManager) -> None:
    manager.create({"id": "concise", "name": "Concise answers", "systemPrompt": "Tiny."})
    assert manager.get("concise").source is PresetSource.USER
    manager.delete("concise")
    assert manager.get("concise").source is PresetSource.BUILTIN


def test_clear_errors(manager: PresetManager, workspace: Path) -> None:
    with pytest.raises(Conflict, match="read-only"):
        manager.delete("coding-assistant")
    with pytest.raises(Conflict, match="read-only"):
        manager.update("coding-assistant", {"name": "x"})
    with pytest.raises(Conflict, match="read-only"):
        manager.create({"id": "x", "name": "X"}, layer="builtin")
    with pytest.raises(NotFound):
        manager.update("missing", {"name": "x"})
    with pytest.raises(NotFound):
        manager.delete("missing")
    with pytest.raises(NotFound):
        manager.export("missing")
    manager.create({"id": "one", "name": "One"})
    with pytest.raises(Conflict, match="already exists"):
        manager.create({"id": "one", "name": "Another"})
    with pytest.raises(Conflict, match="Code reviewer"):
        manager.create({"id": "two", "name": "code REVIEWER"})  # names are case-insensitive
    with pytest.raises(Conflict):
        manager.update("one", {"name": "Concise answers"})
    with pytest.raises(InvalidParams, match="temperature"):
        manager.create({"id": "three", "name": "Three", "sampling": {"temperature": 9}})
    with pytest.raises(InvalidParams):
        manager.update("one", {"sampling": {"topP": 2}})
    with pytest.raises(InvalidParams, match="id"):
        manager.update("one", {"id": "renamed"})
    with pytest.raises(InvalidParams):
        manager.create({"id": "x", "name": "X"}, layer="nowhere")
    with pytest.raises(InvalidParams, match="workspace folder"):
        manager.create({"id": "x", "name": "X"}, layer="workspace")


def test_workspace_create_and_update(manager: PresetManager, workspace: Path) -> None:
    entry = manager.create(
        {"id": "team", "name": "Team", "model": "models/x.gguf"},
        layer="workspace",
        folder_uri=workspace.as_uri(),
    )
    assert entry.path == workspace / ".openllm" / "presets" / "team.json"
    assert entry.source is PresetSource.WORKSPACE
    manager.update("team", {"description": "shared"}, folder_uri=workspace.as_uri())
    assert json.loads(entry.path.read_text(encoding="utf-8"))["description"] == "shared"
    with pytest.raises(Refused):
        manager.update(
            "team", {"model": "https://evil.example/m.gguf"}, folder_uri=workspace.as_uri()
        )
    with pytest.raises(Refused):
        manager.create(
            {"id": "bad", "name": "Bad", "model": "/etc/evil.gguf"},
            layer="workspace",
            folder_uri=workspace.as_uri(),
        )


def test_malformed_files_are_reported_not_fatal_and_not_rewritten(
    manager: PresetManager, data_dir: Path, workspace: Path
) -> None:
    broken_json = _write(data_dir / "presets" / "broken.json", '{\n  "id": "broken",\n}')
    bad_value = _write(
        data_dir / "presets" / "hot.json",
        {"id": "hot", "name": "Hot", "sampling": {"temperature": 7}},
    )
    typo = _ws_preset(workspace, {"id": "typo", "name": "Typo", "sytemPrompt": "x"})
    _write(data_dir / "presets" / "dup-a.json", {"id": "dup", "name": "Dup A"})
    dup_b = _write(data_dir / "presets" / "dup-b.json", {"id": "dup", "name": "Dup B"})
    _write(data_dir / "presets" / "notes.txt", "not a preset")
    _write(data_dir / "presets" / "schema.json", {"$schema": "x"})
    before = {p: p.read_bytes() for p in (broken_json, bad_value, typo)}

    listing = manager.list([workspace.as_uri()])
    problems = {p.path: p for p in listing.problems}
    assert set(problems) == {broken_json, bad_value, typo, dup_b}
    assert problems[broken_json].line == 2 and "invalid JSON" in problems[broken_json].message
    assert "temperature" in problems[bad_value].message
    assert problems[bad_value].line is not None
    assert 'unknown key "sytemPrompt"' in problems[typo].message
    assert problems[typo].source is PresetSource.WORKSPACE
    assert "duplicate id" in problems[dup_b].message
    assert {"coding-assistant", "dup"} <= {e.id for e in listing.presets}
    assert manager.get("dup").preset.name == "Dup A"
    with pytest.raises(NotFound):
        manager.get("hot")
    # creating over an unusable file refuses instead of overwriting it
    with pytest.raises(Conflict, match="not a valid preset"):
        manager.create({"id": "broken", "name": "Broken"})
    assert {p: p.read_bytes() for p in before} == before
    assert listing.to_dict()["problems"][0]["path"]


def test_unreadable_user_dir_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    manager = PresetManager(user_dir=blocker / "presets", state_file=tmp_path / "s.json")
    with pytest.raises(StorageError):
        manager.create({"id": "x", "name": "X"})


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_dir_raises_storage_error(tmp_path: Path) -> None:
    user = tmp_path / "ro"
    user.mkdir()
    user.chmod(0o500)
    try:
        with pytest.raises(StorageError):
            PresetManager(user_dir=user).create({"id": "x", "name": "X"})
    finally:
        user.chmod(0o700)


def test_export_and_import_round_trip(manager: PresetManager) -> None:
    manager.create(
        {"id": "mine", "name": "Mine", "systemPrompt": "Be brief.", "sampling": {"stop": ["###"]}}
    )
    text = manager.export("mine")
    assert json.loads(text)["systemPrompt"] == "Be brief."
    result = manager.import_text(text)
    assert result.preset.id == "mine-2"
    assert result.preset.name == "Mine (2)"
    assert any("taken" in w for w in result.warnings)
    assert manager.get("mine-2").preset.sampling.stop == ("###",)
    preview = manager.import_text(text, save=False)
    with pytest.raises(NotFound):
        manager.get(preview.preset.id)
    with pytest.raises(InvalidParams):
        manager.import_text("{not json")


def test_import_file_into_workspace_applies_safety(
    manager: PresetManager, tmp_path: Path, workspace: Path
) -> None:
    modelfile = _write(tmp_path / "dl" / "Modelfile", "FROM ../../elsewhere/x.gguf\n")
    with pytest.raises(Refused):
        manager.import_file(modelfile, layer="workspace", folder_uri=workspace.as_uri())
    ok = _write(tmp_path / "Modelfile", "FROM hf.co/owner/repo:Q4_K_M\nSYSTEM Hi\n")
    result = manager.import_file(ok, layer="workspace", folder_uri=workspace.as_uri())
    assert manager.get(result.preset.id, workspace.as_uri()).source is PresetSource.WORKSPACE


# --- safety -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "https://example.com/model.gguf",
        "http://localhost:8080/v1/model.gguf",
        "../../etc/model.gguf",
        "/opt/elsewhere/model.gguf",
        "~/outside/model.gguf",
        "C:\\models\\model.gguf" if os.name != "nt" else "D:\\elsewhere\\model.gguf",
    ],
)
def test_unsafe_workspace_presets_are_refused(
    manager: PresetManager, workspace: Path, model: str
) -> None:
    _ws_preset(workspace, {"id": "sneaky", "name": "Sneaky", "model": model})
    listing = manager.list([workspace.as_uri()])
    entry = next(e for e in listing.presets if e.id == "sneaky")
    assert entry.refused is not None
    assert entry.to_dict()["refused"] == entry.refused
    with pytest.raises(Refused) as info:
        manager.select(workspace.as_uri(), "sneaky")
    assert info.value.data["presetId"] == "sneaky"


def test_refused_active_preset_falls_back(manager: PresetManager, workspace: Path) -> None:
    path = _ws_preset(workspace, {"id": "team", "name": "Team", "model": "models/m.gguf"})
    manager.select(workspace.as_uri(), "team")
    _write(path, {"id": "team", "name": "Team", "model": "https://example.com/m.gguf"})
    active = manager.active(workspace.as_uri())
    assert active.fallback and active.entry.id == DEFAULT_PRESET_ID
    assert active.reason is not None and "remote" in active.reason


def test_refused_override_of_the_default_falls_back_to_builtin(
    manager: PresetManager, workspace: Path
) -> None:
    _ws_preset(
        workspace, {"id": DEFAULT_PRESET_ID, "name": "Evil", "model": "http://example.com/m.gguf"}
    )
    active = manager.active(workspace.as_uri())
    assert active.entry.source is PresetSource.BUILTIN
    assert active.fallback is True


def test_paths_inside_workspace_or_model_dirs_are_allowed(
    tmp_path: Path, data_dir: Path, workspace: Path
) -> None:
    models = tmp_path / "my-models"
    models.mkdir()
    manager = PresetManager(policy=SafetyPolicy.create([models]))
    _ws_preset(workspace, {"id": "inside", "name": "Inside", "model": "models/m.gguf"})
    _ws_preset(workspace, {"id": "dirs", "name": "Dirs", "model": str(models / "m.gguf")})
    _ws_preset(workspace, {"id": "hf", "name": "HF", "model": "owner/repo:Q4_K_M"})
    _ws_preset(workspace, {"id": "out", "name": "Out", "model": "/somewhere/else.gguf"})
    refused = {
        e.id: e.refused
        for e in manager.list([workspace.as_uri()]).presets
        if e.source is PresetSource.WORKSPACE
    }
    assert refused["inside"] is None
    assert refused["dirs"] is None
    assert refused["hf"] is None
    assert refused["out"] is not None
    manager.set_policy([models], allow_workspace_model_paths=True)
    assert manager.get("out", workspace.as_uri()).refused is None
    manager.select(workspace.as_uri(), "out")
    _ws_preset(workspace, {"id": "url", "name": "URL", "model": "https://x.example/m.gguf"})
    assert manager.get("url", workspace.as_uri()).refused is not None  # URLs never allowed


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_symlink_escaping_the_workspace_is_refused(
    manager: PresetManager, tmp_path: Path, workspace: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "link").symlink_to(outside)
    _ws_preset(workspace, {"id": "linked", "name": "Linked", "model": "link/m.gguf"})
    assert manager.get("linked", workspace.as_uri()).refused is not None


def test_lint_through_manager_applies_safety(manager: PresetManager, workspace: Path) -> None:
    text = '{"id": "x", "name": "X", "model": "https://example.com/m.gguf"}'
    diagnostics = manager.lint(text, workspace.as_uri())
    assert [d.code for d in diagnostics] == ["refused"]
    assert manager.lint(text) == []
