"""The catalogue as the hub sees it, and recommend(): the best pair per machine, written down.

Machines are the synthetic ones of test_hardware_select.py (an 8 GB laptop, a 16 GB Apple
M-series, a 24 GB NVIDIA card, a 2-core VM, an 8 GB NVIDIA card) plus a 4 GB netbook.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

import pytest

from lsp_server.hub.recommend import CATALOG, CatalogEntry, catalog_entry, cpu_budget, recommend
from lsp_server.models.catalog import catalog
from lsp_server.models.quant import parse_quant
from tests.unit.test_hardware_select import APPLE, LAPTOP, NVIDIA_8, NVIDIA_24, VM_2CORE, _machine

NETBOOK = _machine(4, 2.2, 2)
EMPTY = _machine(1, 0.3, 1)


def test_catalogue_entries_are_complete() -> None:
    repos = {(m.repo, m.role) for m in CATALOG}
    assert len(repos) == len(CATALOG)
    assert len({m.id for m in CATALOG}) == len(CATALOG)
    for model in CATALOG:
        assert model.license_info.id == model.license
        assert model.files and all(f.size > 100_000_000 for f in model.files)
        assert all(parse_quant(f.file) == f.quant for f in model.files), model.id
        assert model.shape.kv_elements_per_token > 0
        if model.role == "completion":
            assert model.fim, f"{model.id}: completion models must be FIM-trained"
    ids = {m.repo for m in CATALOG}
    assert "google/gemma-3-27b-it-qat-q4_0-gguf" in ids  # the origin tutorial's choice
    assert "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF" in ids
    families = {m.family for m in CATALOG if m.role == "chat"}
    assert {"gemma", "llama", "mistral", "qwen"} <= families
    assert any("deepseek" in m.id for m in CATALOG)
    gemma = catalog_entry("google/gemma-3-27b-it-qat-q4_0-gguf")
    assert gemma is not None and gemma.license_info.restricted and gemma.gated
    assert gemma.size_class == "xl" and gemma.files[0].quant == "Q4_0"
    assert catalog_entry("qwen/qwen2.5-coder-1.5b-instruct-gguf:Q8_0", "completion") is not None


def test_entries_are_the_packaged_data_with_the_hub_view() -> None:
    assert all(type(e) is CatalogEntry for e in CATALOG)
    assert [dataclasses.astuple(e) for e in CATALOG] == [dataclasses.astuple(m) for m in catalog()]
    gemma = catalog_entry("gemma-3-27b")
    assert gemma is not None and gemma.repo == "google/gemma-3-27b-it-qat-q4_0-gguf"
    assert gemma.shape.kv_elements_per_token == 62 * 16 * 2 * 128
    assert (gemma.shape.n_layers, gemma.shape.n_vocab, gemma.shape.n_merges) == (62, 262144, 0)
    (candidate,) = gemma.candidates()
    assert (candidate.name, candidate.size, candidate.quant) == (
        "gemma-3-27b-it-q4_0.gguf",
        17_200_000_000,
        "Q4_0",
    )
    data = gemma.to_dict()
    assert (data["license"]["id"], data["license"]["restricted"]) == ("gemma", True)
    assert (data["sizeClass"], data["contextLength"], data["tier"]) == ("xl", 131072, 9)
    assert data["files"] == [
        {"quant": "Q4_0", "file": "gemma-3-27b-it-q4_0.gguf", "size": 17_200_000_000}
    ]
    qwen = catalog_entry("bartowski/Qwen2.5-Coder-7B-Instruct-GGUF")
    assert qwen is not None and qwen.shape.n_merges == 152064  # qwen: BPE merges


EXPECTED = [
    # machine, completion spec, chat spec
    (
        "laptop",
        LAPTOP,
        "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M",
        "bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M",
    ),
    (
        "apple",
        APPLE,
        "bartowski/Qwen2.5-Coder-7B-Instruct-GGUF:Q8_0",
        "bartowski/Qwen2.5-Coder-7B-Instruct-GGUF:Q8_0",  # one file for both roles
    ),
    (
        "nvidia24",
        NVIDIA_24,
        "Qwen/Qwen2.5-Coder-3B-Instruct-GGUF:Q6_K",
        "bartowski/Qwen2.5-Coder-32B-Instruct-GGUF:Q4_K_M",
    ),
    (
        "vm2",
        VM_2CORE,
        "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M",
        "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M",
    ),
    (
        "nvidia8",
        NVIDIA_8,
        "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q5_K_M",
        "google/gemma-3-12b-it-qat-q4_0-gguf:Q4_0",
    ),
    (
        "netbook",
        NETBOOK,
        "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF:Q4_K_M",
        "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF:Q4_K_M",  # the only thing that fits: shared
    ),
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("recommend() must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(("name", "machine", "completion", "chat"), EXPECTED)
def test_recommend_on_synthetic_machines(
    no_network: None, name: str, machine: Any, completion: str, chat: str
) -> None:
    rec = recommend(machine)
    assert rec.completion is not None and rec.chat is not None, rec.explanation
    assert (rec.completion.spec, rec.chat.spec) == (completion, chat), (name, rec.explanation)
    assert rec.completion.row.context == 4096 and rec.chat.row.context == 4096
    text = "\n".join(rec.explanation)
    assert "Completion:" in text and "Chat:" in text and "License" in text
    data = rec.to_dict()
    assert data["completion"]["spec"] == completion and data["chat"]["fit"]["chosen"]


def test_the_explanation_says_why() -> None:
    rec = recommend(LAPTOP)
    text = "\n".join(rec.explanation)
    assert "4 usable core(s)" in text and "no usable GPU" in text
    assert "Llama 3.2 Community License" in text and "must accept" in text
    assert "every token reads the whole model" in text
    slow = [c for c in rec.considered if c["verdict"] == "too slow"]
    assert slow and all("per token" in c["reason"] for c in slow)
    shared = "\n".join(recommend(VM_2CORE).explanation)
    assert "loaded once" in shared
    gpu = "\n".join(recommend(NVIDIA_24).explanation)
    assert "Full GPU" in gpu and "GPU memory" in gpu


def test_nothing_fits_a_tiny_machine() -> None:
    rec = recommend(EMPTY)
    assert rec.completion is None and rec.chat is None
    assert any("nothing in the catalogue fits" in line for line in rec.explanation)


def test_cpu_budget_grows_with_cores_up_to_a_cap() -> None:
    assert cpu_budget("completion", 2) < cpu_budget("completion", 4)
    assert cpu_budget("completion", 64) == cpu_budget("completion", 8)
    assert cpu_budget("chat", 2) < cpu_budget("chat", 8)


def test_a_longer_context_or_more_headroom_picks_smaller(no_network: None) -> None:
    base = recommend(NVIDIA_8)
    tight = recommend(NVIDIA_8, chat_context=32768, kv_cache_type="f16")
    assert base.chat is not None and tight.chat is not None
    assert tight.chat.row.context == 32768
    assert tight.chat.model.tier <= base.chat.model.tier
