"""Quantization names in file names, split shards, bits per weight and quality order."""

from __future__ import annotations

import pytest

from lsp_server.hardware.quant import (
    QUANTS,
    bits_per_weight,
    group_files,
    is_qat,
    parse_quant,
    parse_split,
    quality_rank,
)
from lsp_server.models.gguf import FILE_TYPES


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("mistral-7b-instruct-v0.2.Q5_K_S.gguf", "Q5_K_S"),
        ("qwen2.5-coder-7b-instruct-q4-k-m.gguf", "Q4_K_M"),
        ("codellama-7b.q3_k_l.gguf", "Q3_K_L"),
        ("model.Q2_K.gguf", "Q2_K"),
        ("model-Q3_K_S.gguf", "Q3_K_S"),
        ("model-q4_0.gguf", "Q4_0"),
        ("model-Q4_1.gguf", "Q4_1"),
        ("model-Q5_0.gguf", "Q5_0"),
        ("model-Q5_1.gguf", "Q5_1"),
        ("model-Q6_K.gguf", "Q6_K"),
        ("model-Q8_0.gguf", "Q8_0"),
        ("model-IQ1_S.gguf", "IQ1_S"),
        ("model-IQ1_M.gguf", "IQ1_M"),
        ("model-iq2_xxs.gguf", "IQ2_XXS"),
        ("model-IQ2_XS.gguf", "IQ2_XS"),
        ("model-IQ3_XXS.gguf", "IQ3_XXS"),
        ("model-IQ3_M.gguf", "IQ3_M"),
        ("model-IQ4_XS.gguf", "IQ4_XS"),
        ("model-IQ4_NL.gguf", "IQ4_NL"),
        ("model-f16.gguf", "F16"),
        ("model.BF16.gguf", "BF16"),
        ("model-fp16.gguf", "F16"),
        ("model-F32.gguf", "F32"),
        ("model-q4_k.gguf", "Q4_K_M"),
        ("gemma-3-27b-it-qat-q4_0.gguf", "Q4_0"),
        ("Qwen3-30B-A3B-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("model-Q8_0-00001-of-00003.gguf", "Q8_0"),
        ("llama-q8_0-then-Q4_K_M.gguf", "Q4_K_M"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("models/sub/dir/x-Q6_K.gguf", "Q6_K"),
        ("phi-3-mini-4k-instruct.gguf", None),
        ("q4_k_m_notes.txt", "Q4_K_M"),
    ],
)
def test_parse_quant(name: str, quant: str | None) -> None:
    assert parse_quant(name) == quant


def test_no_false_positives_inside_words() -> None:
    assert parse_quant("aq4_k_m2.gguf") is None
    assert parse_quant("xf16y.gguf") is None


def test_qat() -> None:
    assert is_qat("gemma-3-27b-it-qat-q4_0.gguf")
    assert is_qat("gemma-3-4b-it-QAT-Q4_0.gguf")
    assert not is_qat("gemma-3-27b-it-q4_0.gguf")
    assert not is_qat("squat-q4_0.gguf")


def test_split() -> None:
    s = parse_split("Meta-Llama-3.1-70B-Instruct-Q4_K_M-00002-of-00003.gguf")
    assert s is not None
    assert (s.base, s.index, s.count) == ("Meta-Llama-3.1-70B-Instruct-Q4_K_M", 2, 3)
    assert parse_split("model-Q4_K_M.gguf") is None


def test_group_files() -> None:
    groups = group_files(
        [
            ("big-Q8_0-00001-of-00002.gguf", 40),
            ("big-Q8_0-00002-of-00002.gguf", 30),
            ("big-F16-00001-of-00003.gguf", 50),
            ("big-F16-00003-of-00003.gguf", 50),
            ("big-Q2_K.gguf", 20),
            ("README.md", 1),
            ("mmproj-F16.GGUF", 2),
        ]
    )
    by_name = {g.name: g for g in groups}
    assert set(by_name) == {"big-Q8_0", "big-F16", "big-Q2_K.gguf", "mmproj-F16.GGUF"}
    q8 = by_name["big-Q8_0"]
    assert q8.files == ("big-Q8_0-00001-of-00002.gguf", "big-Q8_0-00002-of-00002.gguf")
    assert q8.size == 70 and q8.complete and q8.quant == "Q8_0"
    assert not by_name["big-F16"].complete
    assert groups[0].quant == "Q2_K"  # sorted by quality, best last
    assert [g.name for g in group_files(["a-Q4_0.gguf"])] == ["a-Q4_0.gguf"]
    assert group_files(["a-Q4_0.gguf"])[0].size is None


def test_quality_order() -> None:
    order = [
        "IQ1_S",
        "IQ2_XXS",
        "Q2_K",
        "IQ3_XXS",
        "Q3_K_S",
        "Q3_K_M",
        "Q3_K_L",
        "IQ4_XS",
        "Q4_0",
        "Q4_K_S",
        "Q4_K_M",
        "Q5_K_S",
        "Q5_K_M",
        "Q6_K",
        "Q8_0",
        "F16",
    ]
    ranks = [quality_rank(q) for q in order]
    assert ranks == sorted(ranks)
    assert quality_rank("nonsense") == -1
    assert quality_rank(None) == -1


def test_bits_per_weight() -> None:
    assert bits_per_weight("F16") == 16.0
    assert bits_per_weight("Q8_0") == 8.5
    assert 4.5 < (bits_per_weight("Q4_K_M") or 0) < 5.0
    assert bits_per_weight(None) is None
    assert bits_per_weight("Q9_9") is None


def test_every_file_type_name_is_known() -> None:
    missing = {n for n in FILE_TYPES.values() if n not in QUANTS}
    # NVFP4/Q1_0/MXFP4_MOE are new ggml types without file-name conventions yet.
    assert missing <= {"MXFP4_MOE", "NVFP4", "Q1_0"}
