"""Hub listings, header-only reads and fit tables through a fake Hub on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.core.errors import AccessDenied, HubUnavailable, InvalidParams, ModelNotFound
from lsp_server.hardware.select import FitOptions
from lsp_server.hub.hf import parse_ref, read_remote_header, remote_fit, repo_info
from lsp_server.models.gguf import read_gguf
from tests.hub_server import FakeHub, hub, tiny_gguf
from tests.unit.test_hardware_select import LAPTOP, NVIDIA_24

__all__ = ["hub"]  # the fixture

SMOL = "test/SmolLM2-135M-Instruct-GGUF"


@pytest.fixture
def smol_hub(hub: FakeHub, smollm2_path: Path, tmp_path: Path) -> FakeHub:
    hub.add_repo(
        SMOL,
        {
            "SmolLM2-135M-Instruct-Q4_1.gguf": smollm2_path,
            "SmolLM2-135M-Instruct-Q8_0.gguf": smollm2_path,
            "mmproj-SmolLM2-f16.gguf": b"not a model",
            "split/SmolLM2-135M-Instruct-Q2_K-00001-of-00002.gguf": smollm2_path,
            "split/SmolLM2-135M-Instruct-Q2_K-00002-of-00002.gguf": b"\0" * 1000,
        },
    )
    return hub


def test_parse_ref() -> None:
    assert parse_ref("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M") == (
        "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        "Q4_K_M",
    )
    assert parse_ref("hf://a/b") == ("a/b", None)
    assert parse_ref("https://huggingface.co/a/b:x.gguf") == ("a/b", "x.gguf")
    with pytest.raises(InvalidParams):
        parse_ref("not a repo")


def test_repo_listing(smol_hub: FakeHub, smollm2_path: Path) -> None:
    info = repo_info(SMOL)
    assert info.commit == smol_hub.repos[SMOL].commit
    assert info.license is not None and info.license.id == "apache-2.0"
    names = [f.name for f in info.gguf_files]
    assert "mmproj-SmolLM2-f16.gguf" not in names  # vision projectors are not models
    q4 = info.file("SmolLM2-135M-Instruct-Q4_1.gguf")
    assert q4 is not None and q4.size == smollm2_path.stat().st_size
    assert q4.sha256 == smol_hub.repos[SMOL].files[q4.name].sha256
    groups = {g.quant: g for g in info.groups()}
    assert set(groups) == {"Q2_K", "Q4_1", "Q8_0"}
    assert len(groups["Q2_K"].files) == 2 and groups["Q2_K"].complete


def test_header_only_read_transfers_a_few_megabytes(smol_hub: FakeHub, smollm2_path: Path) -> None:
    name = "SmolLM2-135M-Instruct-Q4_1.gguf"
    remote = read_remote_header(SMOL, name)
    local = read_gguf(smollm2_path)
    g = remote.gguf
    assert (g.architecture, g.name, g.license) == (local.architecture, local.name, local.license)
    assert len(g.tensors) == len(local.tensors) and g.data_offset == local.data_offset
    assert remote.size == smollm2_path.stat().st_size
    served = smol_hub.served(SMOL, name)
    assert 0 < served < remote.size / 20, (served, remote.size)  # ≪ the 98 MB file
    assert all(r is not None for r in smol_hub.ranges(SMOL, name))  # range reads only


def test_fit_table_for_a_repository(smol_hub: FakeHub) -> None:
    fitted = remote_fit(SMOL, LAPTOP, FitOptions(desired_context=4096))
    rows = {r.quant: r for r in fitted.result.rows}
    assert set(rows) == {"Q2_K", "Q4_1", "Q8_0"}
    assert all(r.placement == "cpu" for r in rows.values())
    assert rows["Q2_K"].size > rows["Q4_1"].size  # the two shards together
    # Same bytes under every name: Q8_0 (capped at Q4_K_M's rank on 4 cores) beats Q4_1.
    assert fitted.result.choice is not None and fitted.result.choice.quant == "Q8_0"
    assert len(fitted.headers) == 1  # one header stands for every quantization
    data = fitted.to_dict()
    assert data["architecture"] == "llama" and data["spec"] == f"{SMOL}:Q8_0"
    assert data["headersRead"][0]["headerBytes"] < data["headersRead"][0]["fileSize"] / 20
    gpu = remote_fit(SMOL, NVIDIA_24, all_headers=True)
    assert len(gpu.headers) == 3 and all(r.placement == "gpu" for r in gpu.result.rows)


def test_repository_without_gguf(hub: FakeHub) -> None:
    hub.add_repo("test/safetensors-only", {"model.safetensors": b"x" * 100})
    with pytest.raises(ModelNotFound, match="no GGUF file"):
        remote_fit("test/safetensors-only", LAPTOP)


def test_unknown_repository(hub: FakeHub) -> None:
    with pytest.raises(ModelNotFound, match="no model repository test/missing"):
        repo_info("test/missing")


def test_gated_repository_needs_a_token(hub: FakeHub, tmp_path: Path) -> None:
    model = tiny_gguf(tmp_path / "g.gguf", license="gemma")
    hub.add_repo("google/gated-GGUF", {"g-Q4_0.gguf": model}, license="gemma", gated=True)
    info = repo_info("google/gated-GGUF")  # the listing is public
    assert info.gated == "manual" and info.license is not None and info.license.key == "gemma"
    with pytest.raises(AccessDenied) as err:
        read_remote_header("google/gated-GGUF", "g-Q4_0.gguf")
    assert "HF_TOKEN" in err.value.message and "hf auth login" in err.value.message
    assert err.value.data["gated"] is True


def test_offline_lists_what_is_cached(hub: FakeHub, tmp_path: Path) -> None:
    cached = tmp_path / "hf" / "hub" / "models--test--cached-GGUF" / "snapshots" / ("a" * 40)
    cached.mkdir(parents=True)
    tiny_gguf(cached / "cached-Q4_K_M.gguf", megabytes=0.1)
    hub.stop()
    with pytest.raises(HubUnavailable) as err:
        repo_info(SMOL)
    assert "Cannot reach the Hugging Face Hub" in err.value.message
    assert "test/cached-GGUF: cached-Q4_K_M.gguf" in err.value.message
    assert err.value.data["cached"] == ["test/cached-GGUF: cached-Q4_K_M.gguf"]


def test_offline_mode_sends_nothing(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="HF_HUB_OFFLINE"):
        repo_info(SMOL)
    with pytest.raises(HubUnavailable):
        read_remote_header(SMOL, "x.gguf")
    assert hub.requests == []
