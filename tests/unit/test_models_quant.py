"""The quantization table (ggml types, file types, bits, quality) and file-name parsing."""

from __future__ import annotations

from typing import Any

import pytest

from lsp_server.models.quant import (
    FILE_TYPES,
    GGML_TYPES,
    QUANT_TABLE,
    QUANTS,
    bits_per_weight,
    ggml_type_name,
    group_files,
    is_qat,
    parse_quant,
    parse_split,
    quality_rank,
)


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


def test_type_tables_match_gguf_package() -> None:
    gguf: Any = pytest.importorskip("gguf")
    for qtype, (block, size) in gguf.GGML_QUANT_SIZES.items():
        ours = GGML_TYPES[int(qtype)]
        assert (ours.name, ours.block_size, ours.type_size) == (qtype.name, block, size)
    for ftype in gguf.LlamaFileType:
        if ftype.name == "GUESSED":
            continue
        expected = ftype.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        assert FILE_TYPES[int(ftype)] == expected


def test_one_table_one_row_per_name() -> None:
    names = [q.name for q in QUANT_TABLE]
    assert len(names) == len(set(names))
    ggml_ids = [q.ggml.id for q in QUANT_TABLE if q.ggml is not None]
    assert len(ggml_ids) == len(set(ggml_ids)) == len(GGML_TYPES)
    file_types = [q.file_type for q in QUANT_TABLE if q.file_type is not None]
    assert len(file_types) == len(set(file_types)) == len(FILE_TYPES)
    # Every view names a row of the table, with the row's own name.
    by_name = {q.name: q for q in QUANT_TABLE}
    for type_id, gtype in GGML_TYPES.items():
        assert by_name[gtype.name].ggml == gtype and gtype.id == type_id
    for ftype, name in FILE_TYPES.items():
        assert by_name[name].file_type == ftype
    for name, info in QUANTS.items():
        assert (by_name[name].bits_per_weight, by_name[name].rank) == (
            info.bits_per_weight,
            info.rank,
        )
    # Ranks are 0..n-1 in row order; unranked rows have no bits per weight.
    assert sorted(info.rank for info in QUANTS.values()) == list(range(len(QUANTS)))
    assert all(q.rank == -1 for q in QUANT_TABLE if q.bits_per_weight is None)


def test_ggml_types() -> None:
    assert ggml_type_name(12) == "Q4_K"
    assert ggml_type_name(9999) == "type9999"
    q4_0 = GGML_TYPES[2]
    assert (q4_0.name, q4_0.block_size, q4_0.type_size) == ("Q4_0", 32, 18)
    assert q4_0.bits_per_weight == 4.5
    assert GGML_TYPES[0].bits_per_weight == 32.0


def test_every_ranked_name_is_parsed_from_a_file_name() -> None:
    for name in QUANTS:
        assert parse_quant(f"model-{name}.gguf") == name
        assert parse_quant(f"model.{name.lower()}.gguf") == name
