"""Import from LM Studio (both formats), Ollama Modelfiles and our own export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsp_server.core.errors import InvalidParams
from lsp_server.presets import (
    detect_format,
    import_lmstudio,
    import_modelfile,
    import_preset_file,
    import_preset_text,
)

LMSTUDIO_V3 = {
    "identifier": "@local:rust-helper",
    "name": "Rust helper",
    "changed": True,
    "operation": {
        "fields": [
            {"key": "llm.prediction.systemPrompt", "value": "You write idiomatic Rust."},
            {"key": "llm.prediction.temperature", "value": 0.3},
            {"key": "llm.prediction.topKSampling", "value": 50},
            {"key": "llm.prediction.topPSampling", "value": {"checked": True, "value": 0.9}},
            {"key": "llm.prediction.minPSampling", "value": {"checked": False, "value": 0.1}},
            {"key": "llm.prediction.repeatPenalty", "value": {"checked": True, "value": 1.15}},
            {"key": "llm.prediction.maxPredictedTokens", "value": {"checked": True, "value": 700}},
            {"key": "llm.prediction.stopStrings", "value": ["</s>", "###"]},
            {"key": "llm.prediction.seed", "value": {"checked": True, "value": 42}},
            {
                "key": "llm.prediction.llama.presencePenalty",
                "value": {"checked": True, "value": 0.5},
            },
            {"key": "llm.prediction.promptTemplate", "value": {"type": "jinja"}},
            {"key": "llm.prediction.llama.cpuThreads", "value": 8},
        ]
    },
    "load": {
        "fields": [
            {"key": "llm.load.contextLength", "value": 8192},
            {"key": "llm.load.llama.acceleration.offloadRatio", "value": 1},
        ]
    },
}

LMSTUDIO_V2 = {
    "name": "Default LM Studio Windows",
    "load_params": {"n_ctx": 4096, "n_batch": 512, "use_mlock": False},
    "inference_params": {
        "n_threads": 4,
        "n_predict": -1,
        "top_k": 40,
        "top_p": 0.95,
        "temp": 2.8,
        "repeat_penalty": 1.1,
        "input_prefix": "### Instruction:\n",
        "input_suffix": "\n### Response:\n",
        "antiprompt": ["### Instruction:"],
        "pre_prompt": "Below is an instruction that describes a task.",
        "seed": -1,
        "min_p": 0.05,
    },
}

MODELFILE = '''# A coding model
FROM hf.co/bartowski/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M
PARAMETER temperature 0.25
PARAMETER top_k 30
PARAMETER top_p 0.9
PARAMETER min_p 0.02
PARAMETER repeat_penalty 1.05
PARAMETER seed 7
PARAMETER num_predict 512
PARAMETER num_ctx 16384
PARAMETER stop "<|im_end|>"
PARAMETER stop " User:"
PARAMETER mirostat 2
TEMPLATE """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>{{ end }}"""
SYSTEM """
You are a senior Python developer.
Answer with code first.
"""
ADAPTER ./lora.gguf
LICENSE """MIT"""
MESSAGE user Is this a question?
'''


def test_lmstudio_fields_format(tmp_path: Path) -> None:
    path = tmp_path / "rust-helper.preset.json"
    path.write_text(json.dumps(LMSTUDIO_V3), encoding="utf-8")
    result = import_preset_file(path)
    p = result.preset
    assert result.source_format == "lmstudio"
    assert (p.id, p.name) == ("rust-helper", "Rust helper")
    assert p.system_prompt == "You write idiomatic Rust."
    s = p.sampling
    assert (s.temperature, s.top_k, s.top_p, s.min_p, s.repeat_penalty) == (0.3, 50, 0.9, 0.0, 1.15)
    assert (s.max_tokens, s.seed, s.presence_penalty) == (700, 42, 0.5)
    assert s.stop == ("</s>", "###")
    assert p.context_length == 8192
    assert set(result.unmapped) == {
        "llm.prediction.promptTemplate",
        "llm.prediction.llama.cpuThreads",
        "llm.load.llama.acceleration.offloadRatio",
    }


def test_lmstudio_unchecked_values_mean_disabled() -> None:
    data = {
        "name": "X",
        "operation": {
            "fields": [
                {
                    "key": "llm.prediction.maxPredictedTokens",
                    "value": {"checked": False, "value": 5},
                },
                {"key": "llm.prediction.repeatPenalty", "value": {"checked": False, "value": 1.5}},
                {"key": "llm.prediction.topPSampling", "value": {"checked": False, "value": 0.5}},
                {"key": "llm.prediction.seed", "value": {"checked": False, "value": 3}},
            ]
        },
    }
    s = import_lmstudio(json.dumps(data)).preset.sampling
    assert (s.max_tokens, s.repeat_penalty, s.top_p, s.seed) == (1024, 1.0, 1.0, None)


def test_lmstudio_old_flat_format(tmp_path: Path) -> None:
    path = tmp_path / "old.preset.json"
    path.write_text(json.dumps(LMSTUDIO_V2), encoding="utf-8")
    result = import_preset_file(path)
    p = result.preset
    assert p.name == "Default LM Studio Windows"
    assert p.id == "default-lm-studio-windows"
    assert p.system_prompt == "Below is an instruction that describes a task."
    assert p.sampling.temperature == 2.0  # clamped
    assert any("temp" in w and "2.8" in w for w in result.warnings)
    assert any("n_predict" in w for w in result.warnings)
    assert (p.sampling.top_k, p.sampling.top_p, p.sampling.min_p) == (40, 0.95, 0.05)
    assert p.sampling.seed is None
    assert p.sampling.stop == ("### Instruction:",)
    assert p.context_length == 4096
    assert set(result.unmapped) == {
        "inference_params.n_threads",
        "inference_params.input_prefix",
        "inference_params.input_suffix",
        "load_params.n_batch",
        "load_params.use_mlock",
    }


def test_modelfile_import_reports_unmapped_directives(tmp_path: Path) -> None:
    path = tmp_path / "python-coder.modelfile"
    path.write_text(MODELFILE, encoding="utf-8")
    result = import_preset_file(path)
    p = result.preset
    assert result.source_format == "ollama"
    assert p.name == "python coder" and p.id == "python-coder"
    assert p.model == "bartowski/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M"
    assert p.system_prompt == "You are a senior Python developer.\nAnswer with code first."
    s = p.sampling
    assert (s.temperature, s.top_k, s.top_p, s.min_p, s.repeat_penalty, s.seed) == (
        0.25,
        30,
        0.9,
        0.02,
        1.05,
        7,
    )
    assert s.max_tokens == 512 and p.context_length == 16384
    assert s.stop == ("<|im_end|>", " User:")
    assert result.unmapped == [
        "PARAMETER mirostat 2",
        "TEMPLATE",
        "ADAPTER ./lora.gguf",
        "LICENSE",
        "MESSAGE user Is this a question?",
    ]


def test_modelfile_single_line_system_and_local_from(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    text = "from ./models/tiny.gguf\nsystem Be terse.\nPARAMETER temperature hot\n"
    result = import_modelfile(text, base_dir=tmp_path)
    assert result.preset.system_prompt == "Be terse."
    assert result.preset.model == str(tmp_path / "models" / "tiny.gguf")
    assert result.preset.sampling.temperature == 0.2  # default kept
    assert "PARAMETER temperature" in result.unmapped
    assert any("not a number" in w for w in result.warnings)


def test_modelfile_with_ollama_library_model() -> None:
    result = import_modelfile("FROM llama3.2:1b\nSYSTEM Hi\nFOO bar\n")
    assert result.preset.model is None
    assert "FROM llama3.2:1b" in result.unmapped
    assert "FOO bar" in result.unmapped
    assert any("Ollama library model" in w for w in result.warnings)
    assert any("unknown instruction FOO" in w for w in result.warnings)


def test_detect_format() -> None:
    assert detect_format(MODELFILE) == "ollama"
    assert detect_format("x", "Modelfile") == "ollama"
    assert detect_format(json.dumps(LMSTUDIO_V3)) == "lmstudio"
    assert detect_format(json.dumps(LMSTUDIO_V2)) == "lmstudio"
    assert detect_format('{"id": "x", "name": "X"}') == "openllm"
    with pytest.raises(InvalidParams):
        detect_format("hello world")
    with pytest.raises(InvalidParams, match="not valid JSON"):
        detect_format("{broken")


def test_bad_import_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidParams, match="not an LM Studio preset"):
        import_lmstudio('{"name": "x"}')
    with pytest.raises(InvalidParams, match="not an Ollama Modelfile"):
        import_modelfile("# only a comment\n")
    with pytest.raises(InvalidParams, match="temperature"):
        import_preset_text('{"id": "x", "name": "X", "sampling": {"temperature": 5}}')
    with pytest.raises(InvalidParams, match="cannot read"):
        import_preset_file(tmp_path / "missing.json")
    binary = tmp_path / "blob.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidParams):
        import_preset_file(binary)


def test_import_result_to_dict() -> None:
    result = import_modelfile("SYSTEM Hi\nTEMPLATE x\n", name="Tiny")
    wire = result.to_dict()
    assert wire["preset"]["systemPrompt"] == "Hi"
    assert wire["unmapped"] == ["TEMPLATE"]
    assert wire["sourceFormat"] == "ollama"
