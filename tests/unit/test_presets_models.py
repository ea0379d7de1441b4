"""Preset model, built-in presets, committed schema and README table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from lsp_server.cli.schema import main as schema_main
from lsp_server.presets import (
    DEFAULT_PRESET_ID,
    Preset,
    builtin_presets_dir,
    parse_model_ref,
    slugify,
)
from lsp_server.presets.schema import (
    REGENERATE_COMMAND,
    repo_presets_dir,
    schema_path,
    schema_text,
)

BUILTIN_FILES = sorted(p for p in repo_presets_dir().glob("*.json") if p.name != "schema.json")


def _minimal(**extra: object) -> dict[str, object]:
    return {"id": "my-preset", "name": "Mine", **extra}


def test_there_are_at_least_six_builtins_including_the_default() -> None:
    ids = {json.loads(p.read_text(encoding="utf-8"))["id"] for p in BUILTIN_FILES}
    assert len(ids) >= 6
    assert {
        DEFAULT_PRESET_ID,
        "code-reviewer",
        "explain-code",
        "test-writer",
        "concise",
        "commit-message",
    } <= ids
    assert builtin_presets_dir().resolve() in (
        repo_presets_dir().resolve(),
        (Path(__file__).parents[2] / "lsp_server" / "presets" / "builtin").resolve(),
    )


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda p: p.stem)
def test_every_builtin_validates_and_suits_code(path: Path) -> None:
    preset = Preset.model_validate(json.loads(path.read_text(encoding="utf-8")))
    assert path.stem == preset.id
    assert preset.system_prompt and len(preset.system_prompt) < 600  # tiny models: keep short
    assert preset.sampling.temperature <= 0.5
    assert preset.model is None  # built-ins never pin a model


def test_defaults_and_wire_names() -> None:
    preset = Preset.model_validate(_minimal())
    wire = preset.to_dict()
    assert wire["schemaVersion"] == 1
    assert set(wire["sampling"]) == {
        "temperature",
        "topP",
        "topK",
        "minP",
        "repeatPenalty",
        "presencePenalty",
        "frequencyPenalty",
        "seed",
        "maxTokens",
        "stop",
    }
    assert wire["sampling"]["seed"] is None
    assert "$schema" not in wire
    # populate_by_name: python names work too
    by_name = Preset.model_validate({"id": "a", "name": "A", "system_prompt": "x"})
    assert by_name.system_prompt == "x"


@pytest.mark.parametrize(
    ("sampling", "fragment"),
    [
        ({"temperature": 2.5}, "less than or equal to 2"),
        ({"temperature": -0.1}, "greater than or equal to 0"),
        ({"topP": 1.5}, "less than or equal to 1"),
        ({"minP": -1}, "greater than or equal to 0"),
        ({"topK": -1}, "greater than or equal to 0"),
        ({"repeatPenalty": 3}, "less than or equal to 2"),
        ({"presencePenalty": -3}, "greater than or equal to -2"),
        ({"frequencyPenalty": 2.5}, "less than or equal to 2"),
        ({"maxTokens": 0}, "greater than or equal to 1"),
        ({"maxTokens": 40000}, "less than or equal to 32768"),
        ({"seed": -1}, "greater than or equal to 0"),
        ({"temperature": "0.2"}, "valid number"),
        ({"topK": 4.5}, "valid integer"),
        ({"stop": [""]}, "at least 1 character"),
        ({"temprature": 0.2}, "Extra inputs are not permitted"),
    ],
)
def test_sampling_ranges_and_types_are_validated(
    sampling: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Preset.model_validate(_minimal(sampling=sampling))
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        {"id": "Bad Id", "name": "x"},
        {"id": "a--b", "name": "x"},
        {"id": "ok", "name": "   "},
        {"id": "ok"},
        {"id": "ok", "name": "x", "schemaVersion": 2},
        {"id": "ok", "name": "x", "contextLength": 10},
        {"id": "ok", "name": "x", "completion": {"linesBefore": -1}},
        {"id": "ok", "name": "x", "completion": {"timeBudget": 100}},
        {"id": "ok", "name": "x", "model": "llama3"},
        {"id": "ok", "name": "x", "model": "/models/not-a-gguf.bin"},
        {"id": "ok", "name": "x", "model": "ftp://host/model.gguf"},
        {"id": "ok", "name": "x", "engineUrl": "http://example.com"},
        {"id": "ok", "name": "x", "sampling": {"temperature": float("nan")}},
    ],
)
def test_malformed_presets_are_rejected(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Preset.model_validate(data)


@pytest.mark.parametrize(
    ("raw", "kind", "repo", "file"),
    [
        ("./models/a.gguf", "path", None, None),
        ("/abs/a.gguf", "path", None, None),
        ("~/models/a.gguf", "path", None, None),
        ("models/a.gguf", "path", None, None),
        ("C:\\models\\a.gguf", "path", None, None),
        ("file:///tmp/a.gguf", "path", None, None),
        (
            "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
            "huggingface",
            "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
            None,
        ),
        ("owner/repo:Q4_K_M", "huggingface", "owner/repo", "Q4_K_M"),
        ("owner/repo:model-q4_0.gguf", "huggingface", "owner/repo", "model-q4_0.gguf"),
        ("https://example.com/m.gguf", "url", None, None),
    ],
)
def test_model_references(raw: str, kind: str, repo: str | None, file: str | None) -> None:
    ref = parse_model_ref(raw)
    assert (ref.kind, ref.repo, ref.file) == (kind, repo, file)


def test_snapshot_is_independent_and_round_trips() -> None:
    preset = Preset.model_validate(_minimal(sampling={"stop": ["###"]}, tags=["a"]))
    snap = preset.snapshot()
    snap["sampling"]["stop"].append("changed")
    snap["tags"].append("changed")
    assert preset.sampling.stop == ("###",)
    assert preset.snapshot() != snap
    again = Preset.from_snapshot(preset.snapshot())
    assert again == preset
    json.dumps(snap)  # plain JSON types only
    with pytest.raises(ValidationError):
        preset.name = "frozen"  # type: ignore[misc]


def test_slugify() -> None:
    assert slugify("Code Reviewer (strict)") == "code-reviewer-strict"
    assert slugify("!!!") == "preset"
    assert len(slugify("x" * 200)) <= 64


def test_schema_file_is_fresh() -> None:
    committed = schema_path().read_text(encoding="utf-8") if schema_path().exists() else ""
    assert committed == schema_text(), (
        f"{schema_path()} is stale: run `{REGENERATE_COMMAND}` and commit the result"
    )


def test_schema_cli_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schema.json"
    assert schema_main(["--check", str(target)]) == 1
    assert REGENERATE_COMMAND in capsys.readouterr().out
    assert schema_main([str(target)]) == 0
    assert schema_main(["--check", str(target)]) == 0
    schema = json.loads(target.read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    assert {"id", "name", "sampling", "$schema"} <= set(schema["properties"])
    assert schema["required"] == ["id", "name"]


def _readme_rows() -> dict[str, list[str]]:
    text = (repo_presets_dir() / "README.md").read_text(encoding="utf-8")
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^\|\s*`([a-z0-9-]+)`\s*\|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_readme_table_lists_every_builtin() -> None:
    rows = _readme_rows()
    stale: list[str] = []
    for path in BUILTIN_FILES:
        preset = Preset.model_validate(json.loads(path.read_text(encoding="utf-8")))
        expected = [
            preset.name,
            preset.description,
            f"{preset.sampling.temperature:g}",
            str(preset.sampling.max_tokens),
        ]
        if rows.get(preset.id) != expected:
            stale.append(f"| `{preset.id}` | {' | '.join(expected)} |")
    extra = set(rows) - {p.stem for p in BUILTIN_FILES}
    assert not stale and not extra, (
        "presets/README.md's table of built-in presets is stale; expected rows:\n"
        + "\n".join(stale)
        + (f"\nrows for missing presets: {sorted(extra)}" if extra else "")
    )
