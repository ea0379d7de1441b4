"""Local discovery: the Hugging Face cache, LM Studio's folder and user folders."""

from __future__ import annotations

from pathlib import Path

from lsp_server.hub.discovery import LocalModel, cached_summary, discover, local_license
from lsp_server.hub.download import download, plan_download
from tests.hub_server import FakeHub, hub, tiny_gguf

__all__ = ["hub"]


def test_lists_every_place_with_header_details(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo(
        "test/tiny-GGUF",
        {"tiny-Q4_K_M.gguf": tiny_gguf(tmp_path / "a.gguf", megabytes=0.5, context=8192)},
        license="apache-2.0",
    )
    download(plan_download("test/tiny-GGUF:Q4_K_M"))
    lms = tmp_path / "lmstudio"
    publisher = lms / "lmstudio-community" / "Tiny-GGUF"
    publisher.mkdir(parents=True)
    tiny_gguf(publisher / "Tiny-Q8_0.gguf", license="llama3.2", megabytes=0.2)
    (publisher / "mmproj-Tiny-f16.gguf").write_bytes(b"projector")
    mine = tmp_path / "mine" / "deep"
    mine.mkdir(parents=True)
    tiny_gguf(mine / "Mine-Q5_K_M-00001-of-00002.gguf", license=None, megabytes=0.2)
    (mine / "Mine-Q5_K_M-00002-of-00002.gguf").write_bytes(b"\0" * 4096)
    (mine / "broken-Q4_0.gguf").write_text("not a model")

    found = discover([tmp_path / "mine"], lm_studio_dirs=[str(lms)], bundled=False)
    by_source: dict[str, list[LocalModel]] = {}
    for m in found.models:
        by_source.setdefault(m.source, []).append(m)
    hf = by_source["huggingface"][0]
    assert hf.spec == "test/tiny-GGUF:tiny-Q4_K_M.gguf" and hf.repo == "test/tiny-GGUF"
    assert hf.header["architecture"] == "llama" and hf.header["contextLength"] == 8192
    assert hf.quant == "Q4_K_M" and hf.license is not None and hf.license.id == "apache-2.0"
    lm = by_source["lmstudio"][0]
    assert lm.repo == "lmstudio-community/Tiny-GGUF" and lm.license is not None
    assert lm.license.restricted and lm.license.key == "llama3.2"
    assert all("mmproj" not in m.path.name for m in found.models)
    folder = {m.path.name: m for m in by_source["folder"]}
    split = folder["Mine-Q5_K_M-00001-of-00002.gguf"]
    assert split.parts == 2 and split.complete and split.license is None
    assert split.size == sum(p.stat().st_size for p in mine.glob("Mine-*"))
    broken = folder["broken-Q4_0.gguf"]
    assert broken.error is not None and "not a GGUF" in broken.error
    data = found.to_dict(["llama3.2"])
    lm_dict = next(m for m in data["models"] if m["source"] == "lmstudio")
    assert lm_dict["license"]["accepted"] is True
    assert str(lms) in data["searched"]
    assert cached_summary() == ["test/tiny-GGUF: tiny-Q4_K_M.gguf"]


def test_bundled_models_are_listed(smollm2_path: Path) -> None:
    found = discover(lm_studio=False, cache_dir=Path("/nonexistent/hf"))
    bundled = [m for m in found.models if m.source == "bundled"]
    assert any(m.path == smollm2_path for m in bundled)
    smol = next(m for m in bundled if m.path == smollm2_path)
    assert smol.license is not None and smol.license.id == "apache-2.0"
    assert smol.header["parameterCount"] > 100_000_000


def test_license_from_a_model_card_next_to_the_file(tmp_path: Path) -> None:
    model = tiny_gguf(tmp_path / "x.gguf", license=None, megabytes=0.1)
    assert local_license(model) is None
    (tmp_path / "README.md").write_text("---\nlicense: gemma\n---\n# x\n")
    info = local_license(model)
    assert info is not None and info.key == "gemma" and info.source == "card"
