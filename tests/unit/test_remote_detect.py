"""What the remote engine learns about a server: the model to use, its context length, and
the health probe against the small fake server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from lsp_server.engine.remote.client import ServerClient
from lsp_server.engine.remote.config import RemoteConfig
from lsp_server.engine.remote.detect import choose_model, context_of, probe
from lsp_server.engine.remote.errors import RemoteError
from tests.fake_openai_server import FakeOpenAI

ENTRIES = [
    {"id": "qwen2.5-coder:latest"},
    {"id": "/models/Qwen2.5-Coder-7B-Q8_0.gguf"},
    {"id": "meta-llama/Llama-3.1-8B-Instruct"},
]


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [
        ("", "qwen2.5-coder:latest"),  # none named: the server's first
        ("qwen2.5-coder", "qwen2.5-coder:latest"),  # Ollama's default tag
        ("qwen2.5-coder:latest", "qwen2.5-coder:latest"),
        ("Qwen2.5-Coder-7B-Q8_0.gguf", "/models/Qwen2.5-Coder-7B-Q8_0.gguf"),  # file name
        ("Qwen2.5-Coder-7B-Q8_0", "/models/Qwen2.5-Coder-7B-Q8_0.gguf"),
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
        ("Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ],
)
def test_choose_model(wanted: str, chosen: str) -> None:
    entry = choose_model(ENTRIES, wanted, "http://gpu:8080")
    assert entry is not None and entry["id"] == chosen


def test_a_model_the_server_lacks_lists_those_it_has() -> None:
    with pytest.raises(RemoteError) as info:
        choose_model(ENTRIES, "llama-70b", "http://gpu:8080")
    err = info.value
    assert err.reason == "modelNotFound" and err.data["available"] == [e["id"] for e in ENTRIES]
    assert "'llama-70b'" in err.message and "openLlm.remote.model" in err.message
    many = [{"id": f"m{i}"} for i in range(60)]
    with pytest.raises(RemoteError) as info:
        choose_model(many, "x", "http://gpu:8080")
    assert len(info.value.data["available"]) == 50 and "m9 ..." in info.value.message
    assert choose_model([], "x", "http://gpu:8080") is None  # the request will say more
    assert choose_model([], "", "http://gpu:8080") is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (None, (None, None)),
        ({"id": "m", "max_model_len": 32768}, (32768, None)),  # vLLM
        ({"id": "m", "loaded_context_length": 8192, "max_context_length": 131072}, (8192, 131072)),
        ({"id": "m", "meta": {"n_ctx_train": 131072, "n_ctx": 4096}}, (4096, 131072)),
        ({"id": "m", "meta": "not a dict", "context_length": 2048}, (2048, None)),
        ({"id": "m", "max_model_len": -1, "n_ctx": "4096"}, (None, None)),
    ],
)
def test_context_of(entry: dict[str, Any] | None, expected: tuple[int | None, int | None]) -> None:
    assert context_of(entry) == expected


async def test_probe_reads_the_model_and_its_context() -> None:
    srv = FakeOpenAI().start()
    try:
        server = ServerClient(RemoteConfig(url=srv.url, model="ok"))
        found = await probe(server)
        assert found.model_id == "ok" and found.context_length == 1024
        assert found.context_source == "server" and found.latency_ms > 0
        srv.context = None  # not in /v1/models, and no llama-server /props
        found = await probe(server)
        assert found.context_length is None and found.context_source == "default"
        assert srv.paths()[-1] == "/props"
        setting = ServerClient(RemoteConfig(url=srv.url, context_length=2048))
        found = await probe(setting)
        assert (found.model_id, found.context_length) == ("default", 2048)
        assert found.context_source == "setting"
        await server.aclose()
        await setting.aclose()
    finally:
        srv.stop()


async def test_probe_refuses_bad_settings_before_any_request() -> None:
    srv = FakeOpenAI().start()
    try:
        server = ServerClient(RemoteConfig(url=srv.url, api_key_env="sk-live-abcdef"))
        with pytest.raises(RemoteError) as info:
            await probe(server)
        assert info.value.reason == "badConfig" and srv.requests == []
        await server.aclose()
    finally:
        srv.stop()
