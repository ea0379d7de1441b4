"""The remote engine against a small OpenAI-compatible server on 127.0.0.1: streaming,
stats, cancellation, endpoint detection and every failure it must explain."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lsp_server.core.errors import Cancelled
from lsp_server.engine.base import CancelToken, GenerationRequest, InfillRequest, SamplingParams
from lsp_server.engine.remote import RemoteConfig, RemoteEngine, RemoteError
from tests.fake_openai_server import PIECES, FakeOpenAI


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    srv = FakeOpenAI().start()
    yield srv
    srv.stop()


def engine_for(url: str, **kw: Any) -> RemoteEngine:
    return RemoteEngine(RemoteConfig(url=url, **kw), "chat")


MESSAGES = [{"role": "user", "content": "Say hello."}]


async def chat(engine: RemoteEngine, **kw: Any) -> Any:
    deltas: list[str] = []
    result = await engine.chat(
        MESSAGES, GenerationRequest(max_tokens=16, **kw), deltas.append, CancelToken()
    )
    return result, deltas


async def failure(engine: RemoteEngine, **kw: Any) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await chat(engine, **kw)
    return info.value


async def test_chat_streams_deltas_with_stats_and_model_info(server: FakeOpenAI) -> None:
    engine = engine_for(server.url + "/v1/", model="ok")
    result, deltas = await chat(engine)
    assert deltas == PIECES and result.text == "".join(PIECES)
    stats = result.stats
    assert stats.prompt_tokens == 12 and stats.generated_tokens == len(PIECES)
    assert stats.stop_reason == "eos" and stats.first_token_ms > 0 and stats.tokens_per_s > 0
    assert engine.last_stats is stats
    assert engine.info.context_length == 1024 and engine.context_source == "server"
    body = next(r["body"] for r in server.requests if r["path"] == "/v1/chat/completions")
    assert body["messages"] == MESSAGES and body["model"] == "ok" and body["stream"] is True
    status = engine.status()
    assert status["health"] == "ok" and status["latencyMs"] is not None
    assert status["url"] == server.url and status["model"] == "ok"
    await engine.aclose()


async def test_api_key_comes_from_the_environment_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-team-0123456789"
    srv = FakeOpenAI(api_key=secret).start()
    try:
        caplog.set_level(logging.DEBUG)
        monkeypatch.delenv("TEAM_KEY", raising=False)
        engine = engine_for(srv.url, api_key_env="TEAM_KEY")
        err = await failure(engine)
        assert err.reason == "unauthorized" and err.data["status"] == 401
        assert "TEAM_KEY" in err.message and "not set" in err.message
        monkeypatch.setenv("TEAM_KEY", secret)
        result, _ = await chat(engine)
        assert result.text == "".join(PIECES)
        assert srv.requests[-1]["auth"] == f"Bearer {secret}"
        shown = json.dumps(engine.status()) + repr(engine.config) + caplog.text + str(err)
        assert secret not in shown and engine.status()["apiKeySet"] is True
        await engine.aclose()
    finally:
        srv.stop()


async def test_a_url_with_credentials_is_shown_without_them(server: FakeOpenAI) -> None:
    url = server.url.replace("http://", "http://alice:hunter2@") + "/v1?token=abc"
    engine = engine_for(url)
    assert engine.url == server.url
    assert "hunter2" not in json.dumps(engine.status()) and "abc" not in engine.url
    await engine.aclose()


@pytest.mark.parametrize(
    ("model", "reason", "status"),
    [
        ("unauthorized", "unauthorized", 401),
        ("forbidden", "forbidden", 403),
        ("busy", "rateLimited", 429),
        ("broken", "serverError", 500),
    ],
)
async def test_http_failures_are_typed(
    server: FakeOpenAI, model: str, reason: str, status: int
) -> None:
    engine = engine_for(server.url, model=model)
    err = await failure(engine)
    assert (err.kind, err.reason, err.data["status"]) == ("remoteError", reason, status)
    assert server.url in err.message and not err.unreachable
    if reason == "rateLimited":
        assert err.data["retryAfterS"] == 7 and "7 s" in err.message
    assert engine.status()["health"] == "error"
    assert engine.status()["error"]["reason"] == reason
    await engine.aclose()


async def test_an_unknown_model_lists_what_the_server_has(server: FakeOpenAI) -> None:
    engine = engine_for(server.url, model="llama-70b")
    err = await failure(engine)
    assert err.reason == "modelNotFound" and "ok" in err.data["available"]
    assert "openLlm.remote.model" in err.message
    server.mode = "missing"  # a server that lists nothing but refuses the name
    server.models = []
    engine2 = engine_for(server.url, model="missing")
    err2 = await failure(engine2)
    assert err2.reason == "modelNotFound" and err2.data["status"] == 404
    await engine.aclose()
    await engine2.aclose()


async def test_503_while_loading_is_unreachable(server: FakeOpenAI) -> None:
    server.mode = "loading"
    engine = engine_for(server.url)
    err = await failure(engine)
    assert err.reason == "unavailable" and err.unreachable
    assert engine.status()["health"] == "unreachable"
    await engine.aclose()


async def test_a_stream_cut_in_the_middle_keeps_the_partial_answer(server: FakeOpenAI) -> None:
    engine = engine_for(server.url, model="cut")
    deltas: list[str] = []
    with pytest.raises(RemoteError) as info:
        await engine.chat(MESSAGES, GenerationRequest(max_tokens=16), deltas.append, CancelToken())
    err = info.value
    assert err.reason == "streamCut" and "partial answer is kept" in err.message
    partial = err.data["partial"]
    assert partial.text == "".join(PIECES[:3]) == "".join(deltas)
    assert partial.stats.stop_reason == "error" and partial.stats.generated_tokens == 3
    assert engine.status()["health"] == "ok"  # one cut answer says nothing about the server
    await engine.aclose()


async def test_a_stalled_server_times_out_with_what_it_sent(server: FakeOpenAI) -> None:
    engine = engine_for(server.url, model="stall", read_timeout_s=1.0)
    start = time.monotonic()
    err = await failure(engine)
    assert err.reason == "timeout" and "1 s" in err.message
    assert time.monotonic() - start < 5
    await engine.aclose()


async def test_connection_refused_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = engine_for(f"http://127.0.0.1:{port}")
    err = await failure(engine)
    assert err.reason == "connectionRefused" and err.unreachable
    assert "is the server running" in err.message
    assert engine.status()["health"] == "unreachable"
    await engine.aclose()


async def test_tls_to_a_plain_http_server_is_a_tls_error(server: FakeOpenAI) -> None:
    engine = engine_for(server.url.replace("http://", "https://"))
    err = await failure(engine)
    assert err.reason == "tls" and err.unreachable and "TLS" in err.message
    await engine.aclose()


async def test_bad_settings_are_reported_without_echoing_a_key() -> None:
    err = await failure(engine_for(""))
    assert err.reason == "badConfig" and "openLlm.remote.url" in err.message
    engine = engine_for("http://127.0.0.1:9", api_key_env="sk-live-abcdef")
    err = await failure(engine)
    assert err.reason == "badConfig" and "sk-live-abcdef" not in err.message
    await engine.aclose()


async def test_cancel_closes_the_stream_at_once(server: FakeOpenAI) -> None:
    engine = engine_for(server.url, model="endless")
    cancel = CancelToken()
    deltas: list[str] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        if len(deltas) == 3:
            cancel.cancel("superseded")

    start = time.monotonic()
    with pytest.raises(Cancelled) as info:
        await engine.chat(MESSAGES, GenerationRequest(max_tokens=10_000), on_delta, cancel)
    cancelled_at = time.monotonic()
    partial = info.value.data["partial"]
    assert partial.text == "".join(deltas) and partial.stats.stop_reason == "cancelled"
    assert "superseded" in info.value.message
    for _ in range(100):  # the server notices the closed connection on its next write
        if server.disconnects:
            break
        await asyncio.sleep(0.02)
    assert server.disconnects and server.disconnects[0] - cancelled_at < 1.0
    assert cancelled_at - start < 5
    await engine.aclose()


async def test_asyncio_cancellation_closes_the_stream_too(server: FakeOpenAI) -> None:
    engine = engine_for(server.url, model="endless")
    task = asyncio.ensure_future(chat(engine))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if server.disconnects:
            break
        await asyncio.sleep(0.02)
    assert server.disconnects
    assert engine.last_stats is not None and engine.last_stats.stop_reason == "cancelled"
    await engine.aclose()


def infill_request(**kw: Any) -> InfillRequest:
    return InfillRequest(
        before="def add(a, b):\n",
        typed="    return ",
        suffix="\n\nprint(add(1, 2))\n",
        path="src/calc.py",
        language="python",
        extra=[("src/util.py", "def sub(a, b):\n    return a - b\n")],
        prompt="# src/util.py\ndef sub(a, b):\n    return a - b\n\n"
        "# src/calc.py\ndef add(a, b):\n    return ",
        **kw,
    )


@pytest.mark.parametrize(
    ("options", "api"),
    [
        ({"infill": True}, "infill"),
        ({"suffix": True}, "suffix"),
        ({"suffix": False}, "prefix"),
    ],
)
async def test_completion_endpoint_is_detected_once(options: dict[str, Any], api: str) -> None:
    srv = FakeOpenAI(**options).start()
    try:
        engine = engine_for(srv.url, model="ok")
        for _ in range(2):
            result = await engine.infill(infill_request(), CancelToken())
            assert result.text == "".join(PIECES)
        assert await engine.completion_api() == api
        assert engine.status()["completionApi"] == api
        served = [r for r in srv.requests if r["body"] and r["body"].get("stream")]
        assert len(served) == 2
        body = served[-1]["body"]
        if api == "infill":
            assert served[-1]["path"] == "/infill"
            assert body["input_prefix"] == "def add(a, b):\n" and body["prompt"] == "    return "
            assert body["input_extra"] == [
                {"filename": "src/util.py", "text": "def sub(a, b):\n    return a - b\n"}
            ]
            assert result.stats.reused_tokens == 3 and result.stats.prompt_tokens == 12
        else:
            assert served[-1]["path"] == "/v1/completions"
            assert body["prompt"].endswith("# src/calc.py\ndef add(a, b):\n    return ")
            assert body["prompt"].startswith("# src/util.py\ndef sub")
            assert ("suffix" in body) == (api == "suffix")
        probes = [r for r in srv.requests if r["body"] and not r["body"].get("stream")]
        assert len(probes) <= 2  # detection ran once
        await engine.aclose()
    finally:
        srv.stop()


async def test_llama_cpp_python_server_gets_prefix_only() -> None:
    """It takes ``suffix`` but fills it in with placeholder FIM tokens: its OpenAPI title
    gives it away."""
    srv = FakeOpenAI(suffix=True, openapi_title="🦙 llama.cpp Python API").start()
    engine = engine_for(srv.url, model="ok")
    try:
        assert await engine.completion_api() == "prefix"
        assert "/openapi.json" in srv.paths()
        assert not any(r["body"] and "suffix" in r["body"] for r in srv.requests)
    finally:
        await engine.aclose()
        srv.stop()


async def test_completion_stops_where_the_rules_say_and_closes_the_stream(
    server: FakeOpenAI,
) -> None:
    engine = engine_for(server.url, model="endless")
    request = infill_request(stop_check=lambda text: 4 if len(text) > 8 else None)
    result = await engine.infill(request, CancelToken())
    assert result.stats.stop_reason == "stop" and len(result.text) == 4
    for _ in range(100):
        if server.disconnects:
            break
        await asyncio.sleep(0.02)
    assert server.disconnects
    await engine.aclose()


async def test_a_completion_that_produces_nothing_in_time_fails(server: FakeOpenAI) -> None:
    engine = engine_for(server.url, model="stall", completion_api="prefix")
    start = time.monotonic()
    with pytest.raises(RemoteError) as info:
        await engine.infill(infill_request(timeout_s=0.5), CancelToken())
    assert info.value.reason == "timeout" and info.value.unreachable
    assert time.monotonic() - start < 3
    await engine.aclose()


async def test_tokenize_uses_the_server_or_estimates(server: FakeOpenAI) -> None:
    engine = engine_for(server.url)
    estimate = await engine.tokenize("x" * 30)
    assert len(estimate) == 11  # no tokenizer endpoint: about one token per 3 characters
    srv = FakeOpenAI(tokenize=True).start()
    try:
        engine2 = engine_for(srv.url)
        assert len(await engine2.tokenize("one two three")) == 3
        await engine2.aclose()
    finally:
        srv.stop()
    await engine.aclose()


@pytest.mark.model
async def test_the_local_engine_serves_the_same_chat_api() -> None:
    """Features call ``chat`` on either engine: the local one renders the template itself.
    (Code completion on both goes through the planner: tests/engine/test_planner.py.)"""
    from lsp_server.config.engines import engine_configs
    from lsp_server.config.settings import Settings
    from lsp_server.engine.local import LocalEngine
    from lsp_server.engine.manager import EngineManager

    manager = EngineManager()
    manager.apply(
        engine_configs(
            Settings.model_validate(
                {
                    "engine": {"contextLength": 512, "batchSize": 64},
                    "completion": {"enabled": False},
                }
            )
        )
    )
    try:
        engine = await manager.engine("chat")
        assert isinstance(engine, LocalEngine) and engine.backend == "local"
        deltas: list[str] = []
        result = await engine.chat(
            MESSAGES,
            GenerationRequest(max_tokens=8, sampling=SamplingParams(temperature=0)),
            deltas.append,
            CancelToken(),
        )
        await asyncio.sleep(0.05)  # deltas arrive through the loop
        assert result.text and "".join(deltas) == result.text
        assert result.stats.prompt_tokens > 5 and 0 < result.stats.generated_tokens <= 8
    finally:
        await manager.close()


async def test_a_server_that_never_answers_cannot_hold_a_request() -> None:
    """Connecting (``/v1/models``) is part of the request: the completion deadline and the
    cancel token cut it short too."""
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        engine = engine_for(url, completion_api="prefix")
        start = time.monotonic()
        with pytest.raises(RemoteError) as info:
            await engine.infill(infill_request(timeout_s=0.5), CancelToken())
        assert info.value.reason == "timeout" and time.monotonic() - start < 3
        cancel = CancelToken()
        asyncio.get_running_loop().call_later(0.3, cancel.cancel)
        start = time.monotonic()
        with pytest.raises(Cancelled):
            await chat_with(engine, cancel)
        assert time.monotonic() - start < 3
        await engine.aclose()


async def chat_with(engine: RemoteEngine, cancel: CancelToken) -> Any:
    return await engine.chat(MESSAGES, GenerationRequest(max_tokens=4), None, cancel)
