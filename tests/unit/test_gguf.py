"""Tests for the pure-Python GGUF header reader (lsp_server.models.gguf) and bundled models."""

from __future__ import annotations

import io
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from lsp_server.core.errors import ModelCorrupt, ModelInvalid, ModelNotFound
from lsp_server.models.bundled import bundled_gemma_path, bundled_smollm2_path
from lsp_server.models.gguf import (
    ArraySummary,
    GgufFile,
    read_gguf,
    read_gguf_from,
)

gguf: Any = pytest.importorskip("gguf")
np: Any = pytest.importorskip("numpy")

MODELS_CACHE = Path(tempfile.gettempdir()) / "open-llm-lsp-test-models"


def _smollm2() -> Path:
    try:
        return bundled_smollm2_path()
    except ModelNotFound as exc:
        pytest.skip(str(exc))


def _gemma() -> Path:
    try:
        return bundled_gemma_path(MODELS_CACHE)
    except ModelNotFound as exc:
        pytest.skip(str(exc))


def _write(path: Path, arch: str = "mystery", **kw: Any) -> Path:
    writer = gguf.GGUFWriter(str(path), arch, **kw)
    writer.add_context_length(2048)
    writer.add_block_count(2)
    writer.add_head_count(4)
    writer.add_embedding_length(64)
    writer.add_tensor("blk.0.w", np.zeros((4, 64), dtype=np.float32))
    writer.add_tensor("blk.1.w", np.zeros((64,), dtype=np.float16))
    return writer  # type: ignore[no-any-return]


def _finish(writer: Any) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# -- real models ---------------------------------------------------------------------------


def test_smollm2_header() -> None:
    path = _smollm2()
    g = read_gguf(path)
    assert g.version == 3
    assert g.architecture == "llama"
    assert g.block_count == 30
    assert g.head_count == 9
    assert g.head_count_kv == 3
    assert g.embedding_length == 576
    assert g.key_length == g.value_length == 64
    assert g.context_length == 8192
    assert g.license == "apache-2.0"
    assert g.quantization == "Q4_1"
    assert g.chat_template and "im_start" in g.chat_template
    assert g.vocab_size == 49152
    assert isinstance(g.metadata["tokenizer.ggml.tokens"], ArraySummary)
    assert g.file_size == path.stat().st_size
    assert g.expected_size <= path.stat().st_size
    assert 0.95 < g.tensor_bytes / path.stat().st_size <= 1.0
    assert 130e6 < g.parameter_count < 140e6
    assert g.sliding_window is None
    assert not g.supports_fim


def test_gemma_header_fast() -> None:
    path = _gemma()
    start = time.perf_counter()
    g = read_gguf(path)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"reading the Gemma header took {elapsed:.2f} s"
    assert g.architecture == "gemma3"
    assert g.block_count == 18
    assert g.head_count_kv == 1
    assert g.key_length == 256
    assert g.sliding_window == 512
    assert g.context_length == 32768
    assert g.quantization == "Q4_K_M"
    assert g.vocab_size == 262144
    assert g.license == "gemma"
    assert 0.95 < g.tensor_bytes / path.stat().st_size <= 1.0


def test_gemma_assembly_reused(tmp_path: Path) -> None:
    _gemma()
    first = bundled_gemma_path(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert bundled_gemma_path(tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.part"))


def test_read_from_stream_matches_file() -> None:
    path = _smollm2()
    data = path.read_bytes()[:2_000_000]  # the header is well inside the first 2 MB
    g = read_gguf_from(io.BytesIO(data), file_size=len(data), path="mem", check_size=False)
    assert g.path == "mem"
    assert g.tensors == read_gguf(path).tensors


# -- truncation and garbage ----------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 3, 10, 100, 5000, 1_000_000])
def test_truncated_header(tmp_path: Path, cut: int) -> None:
    src = _smollm2()
    dst = tmp_path / "cut.gguf"
    with src.open("rb") as f:
        dst.write_bytes(f.read(cut))
    with pytest.raises(ModelCorrupt) as info:
        read_gguf(dst)
    assert str(dst) in info.value.message
    assert "download" in info.value.message


def test_truncated_tensor_data(tmp_path: Path) -> None:
    src = _smollm2()
    dst = tmp_path / "half.gguf"
    with src.open("rb") as f:
        dst.write_bytes(f.read(51_234_567))
    with pytest.raises(ModelCorrupt) as info:
        read_gguf(dst)
    msg = info.value.message
    assert "51,234,567 bytes" in msg and "tensor table needs 98,362,432" in msg
    assert "incomplete" in msg
    g = read_gguf(dst, check_size=False)
    assert g.expected_size == 98_362_432


def test_not_gguf(tmp_path: Path) -> None:
    html = tmp_path / "page.gguf"
    html.write_text("<!DOCTYPE html><html>Not found</html>")
    with pytest.raises(ModelInvalid, match="HTML"):
        read_gguf(html)
    lfs = tmp_path / "lfs.gguf"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(ModelInvalid, match="LFS"):
        read_gguf(lfs)
    ggjt = tmp_path / "old.bin"
    ggjt.write_bytes(b"ggjt" + b"\0" * 100)
    with pytest.raises(ModelInvalid, match="GGML"):
        read_gguf(ggjt)
    tiny = tmp_path / "x.gguf"
    tiny.write_bytes(b"XY")
    with pytest.raises(ModelInvalid):
        read_gguf(tiny)
    with pytest.raises(ModelNotFound):
        read_gguf(tmp_path / "missing.gguf")
    with pytest.raises(ModelInvalid):
        read_gguf(tmp_path)


def test_unsupported_versions(tmp_path: Path) -> None:
    for version, pattern in [(1, "version 1"), (7, "version 7")]:
        p = tmp_path / f"v{version}.gguf"
        p.write_bytes(b"GGUF" + struct.pack("<IQQ", version, 0, 0))
        with pytest.raises(ModelInvalid, match=pattern):
            read_gguf(p)


def test_big_endian_refused(tmp_path: Path) -> None:
    path = tmp_path / "be.gguf"
    _finish(_write(path, endianess=gguf.GGUFEndian.BIG))
    with pytest.raises(ModelInvalid, match="big-endian"):
        read_gguf(path)


def _header(n_tensors: int, n_kv: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv)


def _kv_str(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", 8) + struct.pack("<Q", len(v)) + v


def test_garbage_counts(tmp_path: Path) -> None:
    cases = {
        "tensors": _header(10**12, 0),
        "kv": _header(0, 10**12),
        "strlen": _header(0, 1) + struct.pack("<Q", 10**15) + b"abc",
        "arraylen": _header(0, 1) + struct.pack("<Q", 1) + b"a" + struct.pack("<IIQ", 9, 4, 10**14),
        "valuetype": _header(0, 1) + struct.pack("<Q", 1) + b"a" + struct.pack("<I", 99),
        "dims": _header(1, 0) + struct.pack("<Q", 1) + b"t" + struct.pack("<I", 1000),
    }
    for name, data in cases.items():
        p = tmp_path / f"{name}.gguf"
        p.write_bytes(data + b"\0" * 64)
        with pytest.raises(ModelCorrupt):
            read_gguf(p)


def test_unknown_ggml_type(tmp_path: Path) -> None:
    data = _header(1, 0) + struct.pack("<Q", 1) + b"t" + struct.pack("<IQIQ", 1, 32, 250, 0)
    p = tmp_path / "newtype.gguf"
    p.write_bytes(data + b"\0" * 256)
    with pytest.raises(ModelInvalid, match="ggml type 250"):
        read_gguf(p)


def test_bad_alignment(tmp_path: Path) -> None:
    p = tmp_path / "align.gguf"
    key = b"general.alignment"
    p.write_bytes(_header(0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<II", 4, 3))
    with pytest.raises(ModelCorrupt, match="alignment"):
        read_gguf(p)


# -- synthetic files -----------------------------------------------------------------------


def test_unknown_arch_and_value_types(tmp_path: Path) -> None:
    path = tmp_path / "mystery.gguf"
    w = _write(path)
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(3000)])
    w.add_array("tokenizer.ggml.scores", [float(i) for i in range(3000)])
    w.add_array("small", [1, 2, 3])
    w.add_array("nested", [[1, 2], ["a", "b"]])
    w.add_bool("flag", True)
    w.add_float64("pi", 3.5)
    w.add_int64("neg", -5)
    w.add_string("general.license", "mit")
    w.add_file_type(15)
    _finish(w)
    g = read_gguf(path)
    assert isinstance(g, GgufFile)
    assert g.architecture == "mystery"
    assert g.context_length == 2048
    assert g.block_count == 2
    assert g.head_count_kv == 4  # defaults to head_count
    assert g.key_length == 16
    assert g.license == "mit"
    assert g.quantization == "Q4_K_M"
    assert g.vocab_size == 3000
    assert g.metadata["tokenizer.ggml.scores"] == ArraySummary(6, 3000)
    assert g.metadata["small"] == [1, 2, 3]
    assert g.metadata["nested"] == [[1, 2], ["a", "b"]]
    assert g.metadata["flag"] is True
    assert g.metadata["pi"] == 3.5
    assert g.metadata["neg"] == -5
    assert [t.name for t in g.tensors] == ["blk.0.w", "blk.1.w"]
    assert g.tensors[0].shape == (64, 4)
    assert g.tensors[0].n_bytes == 4 * 64 * 4
    assert g.tensors[1].n_bytes == 64 * 2
    assert g.parameter_count == 4 * 64 + 64
    assert g.expected_size == path.stat().st_size
    assert g.chat_template is None
    assert g.summary()["architecture"] == "mystery"


def test_quantization_from_tensors(tmp_path: Path) -> None:
    path = tmp_path / "noft.gguf"
    _finish(_write(path))
    assert read_gguf(path).quantization == "F32"


def test_fim_token_ids(tmp_path: Path) -> None:
    path = tmp_path / "fim.gguf"
    w = _write(path, arch="qwen2")
    w.add_uint32("tokenizer.ggml.fim_pre_token_id", 151659)
    w.add_uint32("tokenizer.ggml.fim_suf_token_id", 151661)
    w.add_uint32("tokenizer.ggml.fim_mid_token_id", 151660)
    w.add_uint32("tokenizer.ggml.fim_pad_token_id", 151662)
    w.add_uint32("tokenizer.ggml.fim_rep_token_id", 151663)
    w.add_uint32("tokenizer.ggml.fim_sep_token_id", 151664)
    w.add_string("tokenizer.chat_template", "{{ messages }}")
    _finish(w)
    g = read_gguf(path)
    assert (g.fim_pre_token_id, g.fim_suf_token_id, g.fim_mid_token_id) == (
        151659,
        151661,
        151660,
    )
    assert (g.fim_pad_token_id, g.fim_rep_token_id, g.fim_sep_token_id) == (
        151662,
        151663,
        151664,
    )
    assert g.supports_fim
    assert g.chat_template == "{{ messages }}"


def test_legacy_fim_keys(tmp_path: Path) -> None:
    path = tmp_path / "codellama.gguf"
    w = _write(path, arch="llama")
    w.add_uint32("tokenizer.ggml.prefix_token_id", 32007)
    w.add_uint32("tokenizer.ggml.suffix_token_id", 32008)
    w.add_uint32("tokenizer.ggml.middle_token_id", 32009)
    _finish(w)
    g = read_gguf(path)
    assert (g.fim_pre_token_id, g.fim_suf_token_id, g.fim_mid_token_id) == (32007, 32008, 32009)
