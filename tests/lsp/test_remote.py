"""Remote engines end to end: real language server processes on a real OpenAI-compatible
server (llama-cpp-python's ``llama_cpp.server`` with the bundled SmolLM2 on 127.0.0.1), the
small fake server for failures, the trust rule and the local fallback.

Generations stay short (at most 24 tokens) and greedy.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from bench.remote import LlamaServer, llama_server
from lsp_server.demo.client import plain
from tests.fake_openai_server import PIECES, FakeOpenAI
from tests.lsp.conftest import CAPS, SERVER, record_custom, request, send_cancellable

SHORT = {"maxTokens": 12, "temperature": 0}
INLINE_CAPS = types.ClientCapabilities(
    window=CAPS.window,
    workspace=CAPS.workspace,
    text_document=types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities()
    ),
)


def remote_options(url: str, **remote: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "url": url,
        "contextLength": 2048,  # llama-cpp-python's server does not report its --n_ctx
        "healthIntervalS": 0,
        "chat": {"enabled": True},
        "completion": {"enabled": True, "timeoutMs": 60_000, "fallbackToLocal": False},
    }
    options.update(remote)
    return {
        "remote": options,
        "completion": {"maxTokens": 16},
        "models": {"acceptedLicenses": ["gemma"]},
    }


async def initialize(client: LanguageClient, options: dict[str, Any], caps: Any = CAPS) -> None:
    await client.initialize_session(
        types.InitializeParams(capabilities=caps, initialization_options={"openLlm": options})
    )


def chat_deltas(client: LanguageClient) -> list[dict[str, Any]]:
    existing = getattr(client, "chat_deltas", None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    deltas: list[dict[str, Any]] = []
    client.feature("openLlm/chat/delta")(lambda ls, params: deltas.append(plain(params)))
    client.chat_deltas = deltas  # type: ignore[attr-defined]
    return deltas


async def ready(client: LanguageClient, role: str = "chat", timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await request(client, "openLlm/status")
        if status["roles"][role]["state"] in ("ready", "error"):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{role} never became ready: {status}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server on loopback, for this module's tests."""
    with llama_server(log_dir=tmp_path_factory.mktemp("llama-server")) as server:
        yield server


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest_lsp.fixture(scope="session", config=ClientServerConfig(server_command=SERVER))
async def remote(lsp_client: LanguageClient, llama: LlamaServer) -> Any:
    """One language server with chat and completion on the llama-cpp-python server."""
    record_custom(lsp_client)
    chat_deltas(lsp_client)
    await initialize(lsp_client, remote_options(llama.url), INLINE_CAPS)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def fresh_remote(lsp_client: LanguageClient) -> Any:
    """A language server per test, initialized by the test."""
    record_custom(lsp_client)
    chat_deltas(lsp_client)
    yield
    await lsp_client.shutdown_session()


# ---------------------------------------------------------------------------
# The real server
# ---------------------------------------------------------------------------


async def test_status_shows_the_backend_of_each_role(
    remote: LanguageClient, llama: LlamaServer
) -> None:
    status = await ready(remote)
    assert status["backends"] == {"chat": "remote", "completion": "remote"}
    chat = status["roles"]["chat"]
    assert chat["state"] == "ready" and "path" not in chat  # nothing local was loaded
    info = chat["remote"]
    assert info["url"] == llama.url and info["health"] == "ok"
    assert info["latencyMs"] is not None and info["model"].endswith(".gguf")
    assert (info["contextLength"], info["contextSource"]) == (2048, "setting")
    assert chat["model"]["name"].startswith("SmolLM2") and chat["model"]["architecture"] == "remote"
    assert any(
        s["roles"]["chat"].get("backend") == "remote"
        for s in remote.custom["openLlm/statusChanged"]
    )  # type: ignore[attr-defined]


async def test_chat_streams_from_the_remote_server_into_a_stored_chat(
    remote: LanguageClient,
) -> None:
    await ready(remote)
    chat = await request(remote, "openLlm/chat/create", {"title": "On the team server"})
    result = await request(
        remote,
        "openLlm/chat/send",
        {"chatId": chat["id"], "content": "Say hello in one short sentence.", "sampling": SHORT},
    )
    assert result["text"].strip() and result["incomplete"] is False
    deltas = [d for d in chat_deltas(remote) if d["messageId"] == result["message"]["id"]]
    assert len(deltas) > 2 and deltas[-1]["done"] is True
    assert "".join(d["delta"] for d in deltas) == result["text"]
    stats = result["stats"]
    assert 0 < stats["generatedTokens"] <= 12 and stats["stopReason"] in ("eos", "length")
    assert stats["firstTokenMs"] > 0 and stats["tokensPerS"] > 0
    assert stats["model"].startswith("SmolLM2")
    stored = await request(remote, "openLlm/chat/get", {"chatId": chat["id"]})
    answer = stored["messages"][-1]
    assert answer["role"] == "assistant" and answer["content"] == result["text"]
    assert answer["incomplete"] is False


async def test_a_message_too_long_for_the_remote_context_is_refused_not_cut(
    remote: LanguageClient,
) -> None:
    await ready(remote)
    chat = await request(remote, "openLlm/chat/create", {"title": "too long"})
    with pytest.raises(JsonRpcException) as info:
        await remote.protocol.send_request_async(
            "openLlm/chat/send",
            {"chatId": chat["id"], "content": "lorem ipsum " * 1500, "sampling": SHORT},
        )
    assert info.value.code == -32602 and "too long for the model's context" in str(info.value)
    assert info.value.data["contextLength"] == 2048  # counted with the server's tokenizer


async def test_generate_with_messages_uses_the_servers_template(remote: LanguageClient) -> None:
    await ready(remote)
    result = await request(
        remote,
        "openLlm/generate",
        {
            "messages": [{"role": "user", "content": "Name a color."}],
            "maxTokens": 6,
            "temperature": 0,
        },
    )
    assert result["text"].strip() and result["stats"]["generatedTokens"] <= 6


async def test_inline_completion_on_the_remote_server(
    remote: LanguageClient, tmp_path: Path
) -> None:
    await ready(remote, "completion")
    text = 'def add(a, b):\n    """Return the sum of a and b."""\n    return '
    path = tmp_path / "calc.py"
    path.write_text(text)
    uri = path.as_uri()
    remote.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    lines = text.split("\n")
    result = await remote.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=len(lines) - 1, character=len(lines[-1])),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    status = await request(remote, "openLlm/status")
    last = status["completion"]["last"]
    # llama-cpp-python's server has no /infill and mishandles suffix: prefix-only.
    assert last["mode"] == "remote-prefix"
    assert status["roles"]["completion"]["remote"]["completionApi"] == "prefix"
    assert 1 <= last["generatedTokens"] <= 16
    assert isinstance(result, types.InlineCompletionList)
    assert result.items and result.items[0].insert_text.strip()


async def test_a_newer_completion_supersedes_the_remote_one_in_flight(
    remote: LanguageClient, tmp_path: Path
) -> None:
    await ready(remote, "completion")
    text = "".join(f"def helper_{i}(value):\n    return value * {i}\n\n\n" for i in range(8))
    text += "def area(width, height):\n    return "
    path = tmp_path / "area.py"
    path.write_text(text)
    uri = path.as_uri()
    remote.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    end = types.Position(line=text.count("\n"), character=len(text.split("\n")[-1]))

    def inline(pos: types.Position) -> Any:
        return remote.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=pos,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )

    before = (await request(remote, "openLlm/status"))["completion"]["cancelled"]
    first = asyncio.ensure_future(inline(end))
    await asyncio.sleep(0.05)
    remote.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=end, end=end), text="w"
                )
            ],
        )
    )
    second = await inline(types.Position(line=end.line, character=end.character + 1))
    with pytest.raises(JsonRpcException) as info:
        await first
    assert info.value.code == -32800  # RequestCancelled: its stream was closed
    assert isinstance(second, types.InlineCompletionList)
    after = (await request(remote, "openLlm/status"))["completion"]["cancelled"]
    assert after == before + 1


async def test_cancel_closes_the_stream_and_keeps_the_partial_answer(
    remote: LanguageClient, llama: LlamaServer
) -> None:
    await ready(remote)
    chat = await request(remote, "openLlm/chat/create", {"title": "cancelled"})
    deltas = chat_deltas(remote)
    seen = len(deltas)
    before = llama.output().count("Disconnected from client")
    sending = asyncio.ensure_future(
        request(
            remote,
            "openLlm/chat/send",
            {
                "chatId": chat["id"],
                "content": "Count from 1 to 1000, one number per line.",
                "requestId": "remote-cancel",
                "generateTitle": False,
                "sampling": {"maxTokens": 1000, "temperature": 0},
            },
        )
    )
    while len([d for d in deltas[seen:] if d["delta"]]) < 3:
        await asyncio.sleep(0.01)
    cancelled_at = time.monotonic()
    assert (await request(remote, "openLlm/chat/cancel", {"chatId": chat["id"]}))["cancelled"]
    result = await sending
    assert result["incomplete"] is True and result["stats"]["stopReason"] == "cancelled"
    assert result["stats"]["generatedTokens"] < 200
    # The server saw the client go away (it stops generating) ...
    while llama.output().count("Disconnected from client") == before:
        assert time.monotonic() - cancelled_at < 60, llama.output()[-2000:]
        await asyncio.sleep(0.05)
    # ... and serves the next request (no wall-clock bound: CI is 2 noisy cores).
    served = await request(
        remote,
        "openLlm/generate",
        {"messages": [{"role": "user", "content": "Hi"}], "maxTokens": 2, "temperature": 0},
    )
    assert served["stats"]["generatedTokens"] <= 2
    stored = await request(remote, "openLlm/chat/get", {"chatId": chat["id"]})
    assert stored["messages"][-1]["incomplete"] is True
    assert stored["messages"][-1]["content"] == result["text"]


async def test_cancel_request_closes_the_stream(remote: LanguageClient) -> None:
    await ready(remote)
    pending = send_cancellable(
        remote,
        "openLlm/generate",
        {"messages": [{"role": "user", "content": "Write a long story."}], "maxTokens": 1000},
        "remote-cancel-request",
    )
    await asyncio.sleep(0.5)
    remote.protocol.notify("$/cancelRequest", types.CancelParams(id="remote-cancel-request"))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(pending, 10)
    assert info.value.code == -32800


async def test_several_language_servers_share_one_backend(llama: LlamaServer) -> None:
    config = ClientServerConfig(server_command=SERVER)
    clients: list[LanguageClient] = []
    try:
        for _ in range(3):
            client = await config.start()
            assert isinstance(client, LanguageClient)
            clients.append(client)
        options = remote_options(llama.url, completion={"enabled": False})
        await asyncio.gather(*(initialize(c, options) for c in clients))
        await asyncio.gather(*(ready(c) for c in clients))
        results = await asyncio.gather(
            *(
                request(
                    c,
                    "openLlm/generate",
                    {
                        "messages": [{"role": "user", "content": f"Say the number {i}."}],
                        "maxTokens": 8,
                        "temperature": 0,
                        "requestId": f"shared-{i}",
                    },
                )
                for i, c in enumerate(clients)
            )
        )
        assert all(r["text"].strip() and r["stats"]["generatedTokens"] <= 8 for r in results), (
            results
        )
    finally:
        for client in clients:
            await client.shutdown_session()
            await client.stop()


# ---------------------------------------------------------------------------
# Failures (the fake server)
# ---------------------------------------------------------------------------


async def rpc_error(client: LanguageClient, method: str, params: Any) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async(method, params)
    return info.value


async def test_a_cut_stream_keeps_the_partial_answer_marked_incomplete(
    fresh_remote: LanguageClient, fake: FakeOpenAI
) -> None:
    await initialize(fresh_remote, remote_options(fake.url, model="cut"))
    await ready(fresh_remote)
    chat = await request(fresh_remote, "openLlm/chat/create", {})
    err = await rpc_error(
        fresh_remote, "openLlm/chat/send", {"chatId": chat["id"], "content": "Hello?"}
    )
    assert err.code == -32014 and err.data["kind"] == "remoteError"
    assert err.data["reason"] == "streamCut" and err.data["url"] == fake.url
    stored = await request(fresh_remote, "openLlm/chat/get", {"chatId": chat["id"]})
    answer = stored["messages"][-1]
    assert answer["content"] == "".join(PIECES[:3]) and answer["incomplete"] is True
    assert answer["stats"]["stopReason"] == "error"


async def test_refused_keys_and_busy_servers_are_explained(
    fresh_remote: LanguageClient, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await initialize(
        fresh_remote, remote_options(fake.url, model="unauthorized", apiKeyEnv="NO_SUCH_KEY_VAR")
    )
    await ready(fresh_remote)
    err = await rpc_error(
        fresh_remote, "openLlm/generate", {"messages": [{"role": "user", "content": "Hi"}]}
    )
    assert err.data["reason"] == "unauthorized" and err.data["status"] == 401
    assert "NO_SUCH_KEY_VAR" in str(err)
    status = await request(fresh_remote, "openLlm/status")
    remote = status["roles"]["chat"]["remote"]
    assert remote["health"] == "error" and remote["error"]["reason"] == "unauthorized"
    assert remote["apiKeyEnv"] == "NO_SUCH_KEY_VAR" and remote["apiKeySet"] is False


async def test_an_unreachable_server_is_reported_once_and_recovers(
    fresh_remote: LanguageClient, fake: FakeOpenAI
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = remote_options(f"http://127.0.0.1:{port}", completion={"enabled": False})
    await initialize(fresh_remote, options)
    status = await ready(fresh_remote)
    assert status["roles"]["chat"]["remote"]["health"] == "unreachable"
    await asyncio.sleep(0.2)
    warnings = [m.message for m in fresh_remote.messages if "refused the connection" in m.message]
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0]
    err = await rpc_error(
        fresh_remote, "openLlm/generate", {"messages": [{"role": "user", "content": "Hi"}]}
    )
    assert err.data["reason"] == "connectionRefused"


async def test_completion_falls_back_to_the_local_model_while_unreachable(
    fresh_remote: LanguageClient, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = remote_options(
        f"http://127.0.0.1:{port}",
        chat={"enabled": False},
        completion={"enabled": True, "fallbackToLocal": True},
    )
    options["engine"] = {"contextLength": 1024}
    options["completion"] = {"contextLength": 1024, "maxTokens": 16}
    await initialize(fresh_remote, options, INLINE_CAPS)
    deadline = time.monotonic() + 120
    while True:
        status = await request(fresh_remote, "openLlm/status")
        if status["backends"]["completion"] == "local-fallback":
            break
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)
    completion = status["roles"]["completion"]
    assert completion["remote"]["health"] == "unreachable"
    assert completion["fallback"]["active"] is True
    assert completion["fallback"]["model"]["name"]  # the bundled completion model
    text = "def square(x):\n    return "
    path = tmp_path / "sq.py"
    path.write_text(text)
    fresh_remote.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=path.as_uri(), language_id="python", version=1, text=text
            )
        )
    )
    await fresh_remote.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=path.as_uri()),
            position=types.Position(line=1, character=11),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    status = await request(fresh_remote, "openLlm/status")
    assert not status["completion"]["last"]["mode"].startswith("remote")
    changes = [
        s["roles"]["completion"].get("backend")
        for s in fresh_remote.custom["openLlm/statusChanged"]  # type: ignore[attr-defined]
    ]
    assert "remote" in changes and "local-fallback" in changes  # the status changed


# ---------------------------------------------------------------------------
# Trust
# ---------------------------------------------------------------------------


async def test_a_workspace_setting_cannot_enable_a_remote(
    fresh_remote: LanguageClient, fake: FakeOpenAI
) -> None:
    workspace = remote_options(fake.url)
    workspace["completion"] = {"enabled": False}
    fresh_remote.set_configuration(workspace, section="openLlm")
    await initialize(
        fresh_remote,
        {"engine": {"contextLength": 1024}, "completion": {"enabled": False}},
    )
    status = await ready(fresh_remote)
    assert status["backends"]["chat"] == "local" and "remote" not in status["roles"]["chat"]
    warnings = [m.message for m in fresh_remote.messages if "openLlm.remote" in m.message]
    assert len(warnings) == 1 and "user settings" in warnings[0]
    assert fake.requests == []  # nothing was sent to the workspace's server
    fresh_remote.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"openLlm": workspace})
    )
    await asyncio.sleep(0.5)
    status = await request(fresh_remote, "openLlm/status")
    assert status["backends"]["chat"] == "local" and fake.requests == []
    warnings = [m.message for m in fresh_remote.messages if "openLlm.remote" in m.message]
    assert len(warnings) == 1  # reported once
