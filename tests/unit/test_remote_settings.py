"""``openLlm.remote`` settings: per-role configuration, URLs shown without secrets, and
the manager choosing a remote engine for a role (against the small fake server)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from lsp_server.config.engines import engine_configs, remote_configs
from lsp_server.config.settings import Settings, parse_settings
from lsp_server.engine.manager import EngineManager
from lsp_server.engine.remote import (
    RemoteEngine,
    display_url,
    normalize_url,
)
from tests.fake_openai_server import FakeOpenAI


def test_roles_are_local_unless_enabled() -> None:
    settings, problems = parse_settings({"remote": {"url": "http://gpu:8080"}})
    assert problems == []
    assert remote_configs(settings) == {"chat": None, "completion": None}


def test_each_role_may_use_its_own_server_model_and_key() -> None:
    settings, problems = parse_settings(
        {
            "remote": {
                "url": "http://gpu:8080/v1/",
                "model": "qwen-32b",
                "apiKeyEnv": "TEAM_KEY",
                "readTimeoutMs": 30000,
                "chat": {"enabled": True},
                "completion": {
                    "enabled": True,
                    "url": "http://coder:8012",
                    "model": "qwen-coder-7b",
                    "api": "infill",
                    "timeoutMs": 1500,
                },
            }
        }
    )
    assert problems == []
    chat, completion = remote_configs(settings).values()
    assert chat is not None and completion is not None
    assert (chat.url, chat.model, chat.api_key_env) == ("http://gpu:8080", "qwen-32b", "TEAM_KEY")
    assert chat.read_timeout_s == 30 and not chat.fallback_to_local
    assert (completion.url, completion.model) == ("http://coder:8012", "qwen-coder-7b")
    assert completion.completion_api == "infill" and completion.completion_timeout_s == 1.5
    assert completion.fallback_to_local and completion.api_key_env == "TEAM_KEY"


def test_urls_are_shown_without_credentials() -> None:
    assert (
        display_url("https://bob:s3cret@gpu.lan:8443/llm/?key=abc#x") == "https://gpu.lan:8443/llm/"
    )
    assert normalize_url(" http://gpu:8080/v1/ ") == "http://gpu:8080"
    assert normalize_url("https://proxy/team/llm/v1") == "https://proxy/team/llm"


def test_there_is_no_setting_for_the_key_itself() -> None:
    settings, problems = parse_settings({"remote": {"apiKey": "sk-live-123"}})
    assert problems == ["openLlm.remote.apiKey: unknown setting, ignored"]
    assert "sk-live-123" not in repr(settings)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    srv = FakeOpenAI().start()
    yield srv
    srv.stop()


async def test_the_manager_serves_chat_remotely_and_completion_locally(
    server: FakeOpenAI,
) -> None:
    manager = EngineManager()
    settings = Settings.model_validate(
        {
            "remote": {"url": server.url, "model": "ok", "chat": {"enabled": True}},
            "completion": {"enabled": False},
        }
    )
    assert manager.apply(engine_configs(settings)) == ["chat"]
    engine = await manager.engine("chat")
    assert isinstance(engine, RemoteEngine) and engine.model_id == "ok"
    status = manager.status()
    chat = status["roles"]["chat"]
    assert chat["backend"] == "remote" and chat["state"] == "ready"
    assert chat["remote"]["url"] == server.url and chat["remote"]["health"] == "ok"
    assert status["roles"]["completion"]["backend"] == "local"
    assert manager.apply(engine_configs(settings)) == []  # unchanged: no reconnect
    await manager.close()
    assert engine._server.is_closed


@pytest.mark.model
async def test_a_role_moving_to_a_remote_server_frees_its_local_model(
    server: FakeOpenAI,
) -> None:
    from lsp_server.engine.local import LocalEngine

    manager = EngineManager()
    local = {"engine": {"contextLength": 512}, "completion": {"enabled": False}}
    manager.apply(engine_configs(Settings.model_validate(local)))
    assert isinstance(await manager.engine("chat"), LocalEngine)
    assert len(manager._models) == 1
    remote = {**local, "remote": {"url": server.url, "chat": {"enabled": True}}}
    manager.apply(engine_configs(Settings.model_validate(remote)))
    assert isinstance(await manager.engine("chat"), RemoteEngine)
    await asyncio.wrap_future(manager.worker.submit(-1, lambda: None))  # frees run first
    assert manager._models == {}
    assert manager.status()["roles"]["chat"]["backend"] == "remote"
    await manager.close()
