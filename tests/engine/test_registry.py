"""Engine construction by kind (the registry) and the settings → engine config mapping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lsp_server.config.engines import engine_configs
from lsp_server.config.settings import Settings
from lsp_server.core.errors import InvalidParams
from lsp_server.engine import registry
from lsp_server.engine.base import GenerationResult, GenerationStats, ModelInfo
from lsp_server.engine.config import LoadConfig, LocalEngineConfig
from lsp_server.engine.manager import EngineManager
from lsp_server.engine.remote import RemoteConfig, RemoteEngine


class ThirdEngine:
    """A minimal server engine of a kind the project does not ship (e.g. a native API)."""

    backend = "remote"
    accepts_tokens = False
    keeps_kv_cache = False
    in_process = False
    vocabulary = None
    health_error = None
    last_stats = None

    def __init__(self, config: RemoteConfig, role: str) -> None:
        self.config, self.role = config, role
        self.url, self.health = config.url, "unknown"
        self.on_health: Any = None
        self.closed = False
        self.info = ModelInfo("third", config.url, "remote", 0, "", 0, 2048, 2048, "", True)

    async def connect(self) -> None:
        self.health = "ok"

    async def probe(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "health": self.health}

    async def aclose(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    async def infill(self, request: Any, cancel: Any) -> GenerationResult:
        return GenerationResult(request.before[-3:], GenerationStats(stop_reason="eos"))


def test_an_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(InvalidParams, match=r"unknown server engine 'nope'.*openai"):
        registry.create_server_engine("nope", RemoteConfig(url="http://127.0.0.1:9"), "chat")


async def test_the_openai_kind_builds_the_remote_engine() -> None:
    engine = registry.create_server_engine("openai", RemoteConfig(url="http://h:1/v1"), "chat")
    assert isinstance(engine, RemoteEngine) and engine.url == "http://h:1"
    assert (engine.accepts_tokens, engine.keeps_kv_cache, engine.in_process) == (
        False,
        False,
        False,
    )
    assert engine.vocabulary is None and engine.needs_bos("<s>anything")
    await engine.aclose()


async def test_a_third_engine_is_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.SERVER_ENGINES, "third", ThirdEngine)
    manager = EngineManager()
    config = LoadConfig("", LocalEngineConfig(), RemoteConfig(url="http://third:1"), "third")
    try:
        assert manager.apply({"chat": config, "completion": None}) == ["chat"]
        engine = await manager.engine("chat", timeout=5)
        assert isinstance(engine, ThirdEngine) and engine.role == "chat"
        status = manager.status()["roles"]["chat"]
        assert status["backend"] == "remote" and status["remote"]["health"] == "ok"
        assert status["model"]["name"] == "third"
        assert manager.apply({"chat": config, "completion": None}) == []  # same: kept
        assert manager.apply({"chat": None, "completion": None}) == []
        await asyncio.sleep(0.05)  # the detached engine closes on the loop
        assert engine.closed and manager.status()["roles"]["chat"]["state"] == "disabled"
    finally:
        await manager.close()


async def test_a_role_with_an_unknown_kind_is_in_error() -> None:
    manager = EngineManager()
    config = LoadConfig("", LocalEngineConfig(), RemoteConfig(url="http://x:1"), "nope")
    try:
        manager.apply({"chat": config, "completion": None})
        with pytest.raises(InvalidParams, match="unknown server engine"):
            await manager.engine("chat", timeout=5)
        assert manager.status()["roles"]["chat"]["state"] == "error"
    finally:
        await manager.close()


def test_settings_map_to_plain_engine_configs() -> None:
    settings = Settings.model_validate(
        {
            "model": "/m/chat.gguf",
            "engine": {"contextLength": 1024, "threads": 3, "kvCacheType": "q8_0"},
            "completion": {"contextLength": 512},
        }
    )
    configs = engine_configs(settings)
    chat, completion = configs["chat"], configs["completion"]
    assert chat is not None and completion is not None
    assert chat.spec == completion.spec == "/m/chat.gguf" and chat.remote is None
    assert chat.engine == LocalEngineConfig(context_length=1024, threads=3, kv_cache_type="q8_0")
    assert completion.engine.context_length == 512 and completion.engine.threads == 3
    assert engine_configs(settings) == configs  # compared by value: no reload
    off = engine_configs(Settings.model_validate({"completion": {"enabled": False}}))
    assert off["completion"] is None
    # The defaults of the plain config are the settings' defaults.
    assert engine_configs(Settings())["chat"] == LoadConfig("", LocalEngineConfig())


def test_a_remote_chat_keeps_no_local_configuration() -> None:
    settings = Settings.model_validate(
        {
            "engine": {"contextLength": 1024},
            "remote": {"url": "http://h:8080", "chat": {"enabled": True}},
        }
    )
    chat = engine_configs(settings)["chat"]
    assert chat is not None and chat.remote is not None and chat.remote.url == "http://h:8080"
    assert chat.engine == LocalEngineConfig() and chat.server_kind == "openai"
