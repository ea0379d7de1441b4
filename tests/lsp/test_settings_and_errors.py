"""Settings and model load errors on fresh server processes: clear errors, then recovery."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests.lsp.conftest import CAPS, request, wait_state


async def init(client: LanguageClient, options: dict[str, Any]) -> None:
    options = {"models": {"acceptedLicenses": ["gemma"]}, **options}  # bundled model's terms
    await client.initialize_session(
        types.InitializeParams(capabilities=CAPS, initialization_options={"openLlm": options})
    )


def push(client: LanguageClient, settings: dict[str, Any]) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"openLlm": settings})
    )


async def next_error(client: LanguageClient, kind: str) -> dict[str, Any]:
    for _ in range(600):
        status = await request(client, "openLlm/status")
        err = status["roles"]["chat"].get("error")
        if status["state"] == "error" and err and err["kind"] == kind:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} error: {status}")


def unsupported_arch_gguf(path: Path) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="notarealarch")
    writer.add_name("mystery")
    writer.add_context_length(128)
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_head_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


async def test_invalid_settings_are_reported_and_defaults_kept(fresh: LanguageClient) -> None:
    await init(fresh, {"engine": {"threads": "lots", "contextLength": 1024}, "typo": 1})
    status = await wait_state(fresh, "ready", "error")
    assert status["state"] == "ready"
    problems = status["settingsProblems"]
    # The rejected value is described, not echoed (a workspace may control it).
    assert any("openLlm.engine.threads" in p and "a string of 4 characters" in p for p in problems)
    assert any("openLlm.typo" in p for p in problems)
    assert status["model"]["contextLength"] == 1024  # the valid sibling was applied
    warnings = [m for m in fresh.messages if m.message.startswith("Open LLM settings")]
    assert len(warnings) == 1 and "openLlm.engine.threads" in warnings[0].message
    assert warnings[0].type == types.MessageType.Warning


async def test_load_errors_are_typed_and_recoverable(
    fresh: LanguageClient, tmp_path: Path, smollm2_path: Path
) -> None:
    missing = tmp_path / "nope.gguf"
    await init(fresh, {"model": str(missing), "engine": {"contextLength": 1024}})
    status = await next_error(fresh, "modelNotFound")
    assert str(missing) in status["message"]
    with pytest.raises(JsonRpcException) as info:
        await request(fresh, "openLlm/generate", {"prompt": "x"})
    assert info.value.code == -32001  # the load error, not a crash

    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("this is not a model\n" * 100)
    push(fresh, {"model": str(not_gguf)})
    status = await next_error(fresh, "modelInvalid")
    assert "notes.gguf" in status["message"]

    truncated = tmp_path / "truncated.gguf"
    with smollm2_path.open("rb") as src:
        truncated.write_bytes(src.read(20_000_000))
    push(fresh, {"model": str(truncated)})
    status = await next_error(fresh, "modelCorrupt")
    assert "truncated.gguf" in status["message"]

    push(fresh, {"model": str(unsupported_arch_gguf(tmp_path / "mystery.gguf"))})
    status = await next_error(fresh, "unsupportedArchitecture")
    assert "notarealarch" in status["message"]

    push(fresh, {"model": "", "engine": {"contextLength": 1_000_000, "kvCacheType": "f32"}})
    status = await next_error(fresh, "insufficientMemory")
    assert "GiB" in status["message"] and "contextLength" in status["message"]

    errors = [m for m in fresh.messages if m.type == types.MessageType.Error]
    assert len(errors) >= 5  # each failure was shown once

    push(fresh, {"model": "", "engine": {"contextLength": 1024}})
    status = await wait_state(fresh, "ready", timeout=300)
    assert status["model"]["architecture"] == "llama"
    result = await request(fresh, "openLlm/generate", {"prompt": "Hello", "maxTokens": 2})
    assert result["stats"]["generatedTokens"] >= 1


async def test_hugging_face_reference_not_cached_is_model_not_found(
    fresh: LanguageClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await init(fresh, {"model": "someone/NoSuchModel-GGUF:Q4_K_M"})
    status = await next_error(fresh, "modelNotFound")
    assert "not in the local Hugging Face cache" in status["message"]
