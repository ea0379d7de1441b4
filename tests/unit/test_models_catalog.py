"""The model catalogue as data: catalog.json, its typed loader and its error messages."""

from __future__ import annotations

import copy
import fnmatch
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from lsp_server.models.catalog import (
    CATALOG_PATH,
    CatalogError,
    CatalogFile,
    CatalogModel,
    catalog,
    load_catalog,
)

ROOT = Path(__file__).resolve().parents[2]


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    return data


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _error(tmp_path: Path, data: Any) -> str:
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    return err.value.message


def test_the_packaged_catalogue_loads_typed_entries() -> None:
    models = catalog()
    assert models is catalog()  # read once
    assert len(models) == 19
    assert all(isinstance(m, CatalogModel) for m in models)
    assert all(isinstance(f, CatalogFile) for m in models for f in m.files)
    assert all(isinstance(m.files, tuple) for m in models)
    assert len({hash(m) for m in models}) == len(models)  # frozen and hashable
    assert sum(m.role == "completion" for m in models) == 4


def test_pinned_entries() -> None:
    by_id = {m.id: m for m in catalog()}
    gemma = by_id["gemma-3-27b"]
    assert (gemma.repo, gemma.role, gemma.family, gemma.license) == (
        "google/gemma-3-27b-it-qat-q4_0-gguf",
        "chat",
        "gemma",
        "gemma",
    )
    assert (gemma.parameters, gemma.tier, gemma.gated, gemma.fim) == (27.0, 9, True, False)
    assert (gemma.layers, gemma.embd, gemma.vocab, gemma.kv_heads, gemma.head_dim) == (
        62,
        5376,
        262144,
        16,
        128,
    )
    assert gemma.context == 131072 and gemma.size_class == "xl"
    assert gemma.files == (CatalogFile("Q4_0", "gemma-3-27b-it-q4_0.gguf", 17_200_000_000),)
    assert gemma.notes.startswith("Quantization-aware trained")
    coder = by_id["qwen2.5-coder-1.5b"]
    assert (coder.role, coder.fim, coder.tier) == ("completion", True, 2)
    assert coder.license == "apache-2.0"
    assert [(f.quant, f.size) for f in coder.files] == [
        ("Q4_K_M", 1_120_000_000),
        ("Q5_K_M", 1_290_000_000),
        ("Q6_K", 1_460_000_000),
        ("Q8_0", 1_890_000_000),
    ]
    assert coder.files[0].file == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert coder.spec("Q8_0") == "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q8_0"
    llama = by_id["llama-3.1-8b"]
    assert llama.files[-1] == CatalogFile(
        "Q8_0", "Meta-Llama-3.1-8B-Instruct-Q8_0.gguf", 8_540_000_000
    )
    assert (llama.kv_heads, llama.context, llama.notes) == (8, 131072, "")


def test_the_catalogue_is_packaged_in_the_wheel() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["lsp_server"]
    relative = CATALOG_PATH.relative_to(ROOT / "lsp_server").as_posix()
    assert any(fnmatch.fnmatch(relative, g) for g in globs), globs


def test_a_copy_of_the_file_loads_the_same(tmp_path: Path) -> None:
    assert load_catalog(_write(tmp_path, _raw())) == catalog()


def _bad_entry(change: Any, index: int = 2) -> dict[str, Any]:
    data = _raw()
    data = copy.deepcopy(data)
    change(data["models"][index])
    return data


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.update(layers="24"), "layers: Input should be a valid integer"),
        (lambda m: m.update(layers=0), "layers: Input should be greater than 0"),
        (lambda m: m.update(parameters="3B"), "parameters: Input should be a valid number"),
        (lambda m: m.update(role="embedding"), "role: Input should be 'completion' or 'chat'"),
        (lambda m: m.update(fim="yes"), "fim: Input should be a valid boolean"),
        (lambda m: m.update(kv_head=2), "kv_head: Unexpected keyword argument"),
        (lambda m: m.pop("context"), "context: Field required"),
        (lambda m: m.update(files=[]), "files: Tuple should have at least 1 item"),
        (lambda m: m.update(repo="no-owner"), "repo: String should match pattern"),
        (lambda m: m["files"][1].update(size="2.4 GB"), "files.1.size: Input should be a valid"),
        (lambda m: m["files"][0].pop("file"), "files.0.file: Field required"),
        (
            lambda m: m["files"][0].update(quant="Q5_K_M"),
            "files: 'qwen2.5-coder-3b-instruct-q4_k_m.gguf' does not name its quantization "
            "'Q5_K_M'",
        ),
        (lambda m: m["files"][0].update(quant="Q9_K"), "files: 'Q9_K' is not a known"),
        (lambda m: m["files"][0].update(file="Q4_K_M.bin"), "files: 'Q4_K_M.bin' is not a .gguf"),
        (lambda m: m["files"].append(m["files"][0]), "files: a quantization is listed twice"),
    ],
)
def test_a_bad_entry_is_named(tmp_path: Path, change: Any, expected: str) -> None:
    message = _error(tmp_path, _bad_entry(change))
    assert f"catalog.json: model #3 ('qwen2.5-coder-3b'): {expected}" in message


def test_several_errors_in_one_entry_are_counted(tmp_path: Path) -> None:
    message = _error(tmp_path, _bad_entry(lambda m: m.update(layers="x", embd="y", vocab="z")))
    assert "model #3 ('qwen2.5-coder-3b'): layers:" in message and "(and 2 more)" in message


def test_an_entry_without_an_id_is_named_by_number(tmp_path: Path) -> None:
    message = _error(tmp_path, _bad_entry(lambda m: m.pop("id"), index=0))
    assert message.endswith("catalog.json: model #1: id: Field required")
    data = _raw()
    data["models"].insert(1, ["not", "an", "object"])
    assert "model #2: entry: Input should be an object" in _error(tmp_path, data)


def test_duplicates_are_refused(tmp_path: Path) -> None:
    data = _raw()
    twin = copy.deepcopy(data["models"][0])
    data["models"].append(twin)
    assert "model #20 ('qwen2.5-coder-0.5b'): id: the same id appears earlier" in _error(
        tmp_path, data
    )
    twin["id"] = "another-id"
    assert "model #20 ('another-id'): repo: Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF is " in (
        _error(tmp_path, data)
    )
    twin["role"] = "chat"  # the same repository in the other role is fine
    data["models"] = [m for m in data["models"] if m["id"] != "qwen2.5-coder-0.5b-chat"]
    assert len(load_catalog(_write(tmp_path, data))) == 19


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"version": 1, "models": [', "is not valid JSON: Expecting value (line 1, column 27)"),
        ("[]", 'expected an object with a "models" list'),
        ('{"version": 1, "models": {}}', 'expected an object with a "models" list'),
        ('{"version": 2, "models": []}', "version 2 is not supported (expected 1)"),
        ('{"models": []}', "version None is not supported"),
        ('{"version": 1, "models": [], "extra": 1}', "unknown top-level keys: extra"),
    ],
)
def test_a_bad_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    message = _error(tmp_path, text)
    assert str(tmp_path / "catalog.json") in message and expected in message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog(tmp_path / "nowhere.json")
    (tmp_path / "latin1.json").write_bytes(b'{"version": 1, "models": ["\xe9"]}')
    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog(tmp_path / "latin1.json")


def test_an_empty_catalogue_is_valid(tmp_path: Path) -> None:
    assert load_catalog(_write(tmp_path, {"version": 1, "models": []})) == ()
