"""Settings: defaults, partial validation, messages naming the field."""

from __future__ import annotations

from lsp_server.config.settings import Settings, flat_settings, parse_settings, settings_schema


def test_defaults_are_complete() -> None:
    settings, problems = parse_settings({})
    assert problems == []
    assert settings == Settings()
    assert settings.engine.context_length == 4096
    assert settings.engine.threads == "auto"


def test_camel_case_values_are_read() -> None:
    settings, problems = parse_settings(
        {"model": "/m.gguf", "engine": {"contextLength": 2048, "threads": 3, "kvCacheType": "q8_0"}}
    )
    assert problems == []
    assert settings.model == "/m.gguf"
    assert settings.engine.context_length == 2048
    assert settings.engine.threads == 3
    assert settings.engine.kv_cache_type == "q8_0"


def test_invalid_field_keeps_its_default_and_others_survive() -> None:
    settings, problems = parse_settings(
        {"engine": {"threads": "lots", "contextLength": -5, "batchSize": 128}, "bogus": 1}
    )
    assert settings.engine.threads == "auto"
    assert settings.engine.context_length == 4096
    assert settings.engine.batch_size == 128  # the valid sibling is kept
    joined = "\n".join(problems)
    assert "openLlm.engine.threads" in joined and "a string of 4 characters" in joined
    assert "lots" not in joined  # values are described, never echoed
    assert "openLlm.engine.contextLength" in joined
    assert "openLlm.bogus: unknown setting" in joined
    assert len(problems) == 3


def test_wrong_shapes_fall_back_to_defaults() -> None:
    settings, problems = parse_settings({"engine": 5})
    assert settings.engine == Settings().engine
    assert problems and problems[0].startswith("openLlm.engine:")
    settings, problems = parse_settings(["not", "an", "object"])
    assert settings == Settings()
    assert "expected an object" in problems[0]


def test_every_leaf_is_described_and_in_the_schema() -> None:
    rows = flat_settings()
    keys = {key for key, *_ in rows}
    assert {
        "openLlm.model",
        "openLlm.engine.contextLength",
        "openLlm.engine.threads",
        "openLlm.engine.batchSize",
        "openLlm.engine.gpuLayers",
        "openLlm.engine.flashAttention",
        "openLlm.engine.kvCacheType",
        "openLlm.seed",
    } <= keys
    assert all(desc for *_, desc in rows)
    schema = settings_schema()
    assert "engine" in schema["properties"]
