"""End to end: the real server process on the bundled model, over stdio."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests.lsp.conftest import cancel_request, request, send_cancellable, wait_state


async def test_initialize_advertises_incremental_sync(client: LanguageClient) -> None:
    status = await wait_state(client, "ready", "error")
    assert status["state"] == "ready", status
    model = status["model"]
    assert model["architecture"] == "llama"
    assert model["license"] == "apache-2.0"
    assert model["quantization"] == "Q4_1"
    assert 100e6 < model["parameters"] < 200e6
    assert model["contextLength"] == 2048  # from workspace/configuration
    assert model["trainedContextLength"] == 8192
    assert model["threads"] >= 1
    assert status["bundled"] is True
    assert status["settingsProblems"] == []


async def test_status_notifications_and_load_progress(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    events = client.custom["openLlm/statusChanged"]  # type: ignore[attr-defined]
    states = [e["state"] for e in events]
    assert states[0] == "loading" and "ready" in states
    # The notification carries the same object as openLlm/status.
    status = await request(client, "openLlm/status")
    assert set(events[-1]) == set(status)
    assert {"settingsProblems", "completion", "preset"} <= set(events[-1])
    reports = [r for token in client.progress_reports.values() for r in token]
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    assert reports[0].title == "Loading model"
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)


async def test_demo_model_is_announced_once(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    for _ in range(50):
        if any("demo model" in m.message for m in client.messages):
            break
        await asyncio.sleep(0.1)
    demo = [m for m in client.messages if "demo model" in m.message]
    assert len(demo) == 1
    assert demo[0].type == types.MessageType.Info
    assert "openLlm.model" in demo[0].message


async def test_generate_streams_deltas_and_updates_status(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    deltas = client.custom["openLlm/generateDelta"]  # type: ignore[attr-defined]
    before = len(deltas)
    result = await request(
        client,
        "openLlm/generate",
        {
            "messages": [{"role": "user", "content": "Say hello."}],
            "maxTokens": 12,
            "temperature": 0,
            "requestId": "t-stream",
        },
    )
    mine = [d["delta"] for d in deltas[before:] if d["requestId"] == "t-stream"]
    assert len(mine) >= 2
    assert "".join(mine) == result["text"]
    stats = result["stats"]
    assert stats["generatedTokens"] >= 2 and stats["tokensPerS"] > 0
    status = await request(client, "openLlm/status")
    assert status["tokensPerSecond"] == pytest.approx(stats["tokensPerS"], rel=0.01)


async def test_cancel_request_mid_generation(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    deltas = client.custom["openLlm/generateDelta"]  # type: ignore[attr-defined]
    fut = send_cancellable(
        client,
        "openLlm/generate",
        {
            "prompt": "List the numbers from 1 to 500:\n1, 2, 3,",
            "maxTokens": 1500,
            "temperature": 0,
            "requestId": "t-cancel",
        },
        "cancel-gen",
    )
    for _ in range(600):
        if any(d["requestId"] == "t-cancel" for d in deltas):
            break
        await asyncio.sleep(0.05)
    cancel_request(client, "cancel-gen")
    with pytest.raises(JsonRpcException) as info:
        await fut
    assert info.value.code == -32800
    stats = None
    for _ in range(100):
        status = await request(client, "openLlm/status")
        stats = status["roles"]["chat"]["lastStats"]
        if stats and stats["stopReason"] == "cancelled":
            break
        await asyncio.sleep(0.1)
    assert stats is not None and stats["stopReason"] == "cancelled"
    assert 0 < stats["generatedTokens"] < 1500
    # The server is still healthy.
    result = await request(client, "openLlm/generate", {"prompt": "1, 2,", "maxTokens": 2})
    assert result["stats"]["generatedTokens"] >= 1


async def test_cancel_by_request_id_returns_the_partial_answer(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    deltas = client.custom["openLlm/generateDelta"]  # type: ignore[attr-defined]
    task = asyncio.ensure_future(
        request(
            client,
            "openLlm/generate",
            {"prompt": "Count: 1, 2, 3,", "maxTokens": 1500, "temperature": 0, "requestId": "t-id"},
        )
    )
    for _ in range(600):
        if any(d["requestId"] == "t-id" for d in deltas):
            break
        await asyncio.sleep(0.05)
    assert (await request(client, "openLlm/cancel", {"requestId": "t-id"}))["cancelled"] is True
    result = await task
    assert result["stats"]["stopReason"] == "cancelled"
    assert result["text"] == "".join(d["delta"] for d in deltas if d["requestId"] == "t-id")
    missing = await request(client, "openLlm/cancel", {"requestId": "no-such-request"})
    assert missing["cancelled"] is False


async def test_cancel_mid_prompt(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    long_prompt = "def f(x):\n    return x + 1\n\n" * 120  # ~1,900 tokens, 30 slices of 64
    fut = send_cancellable(
        client,
        "openLlm/generate",
        {"prompt": long_prompt, "maxTokens": 4, "requestId": "t-prompt"},
        "cancel-prompt",
    )
    await asyncio.sleep(1.0)
    cancel_request(client, "cancel-prompt")
    with pytest.raises(JsonRpcException) as info:
        await fut
    assert info.value.code == -32800
    stats: dict[str, int | str] = {}
    for _ in range(100):
        stats = (await request(client, "openLlm/status"))["roles"]["chat"]["lastStats"]
        if stats and stats["stopReason"] == "cancelled":
            break
        await asyncio.sleep(0.1)
    assert stats["stopReason"] == "cancelled"
    assert stats["generatedTokens"] == 0
    assert int(stats["evaluatedTokens"]) < int(stats["promptTokens"])
    assert int(stats["evaluatedTokens"]) % 64 == 0  # stopped on a slice boundary


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "x", "messages": [{"role": "user", "content": "y"}]}, "exactly one"),
        ({"prompt": "x", "maxTokens": -1}, "maxTokens"),
        ({"prompt": "x", "temperature": "hot"}, "temperature"),
        ({"prompt": "x", "bogus": 1}, "bogus"),
        ([1, 2], "must be an object"),
    ],
)
async def test_malformed_params_get_invalid_params(
    client: LanguageClient, params: Any, fragment: str
) -> None:
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async("openLlm/generate", params)
    assert info.value.code == -32602
    assert fragment in info.value.message


async def test_unknown_method_gets_method_not_found(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async("openLlm/noSuchMethod", {})
    assert info.value.code == -32601
    status = await request(client, "openLlm/status")
    assert status["state"] == "ready"
