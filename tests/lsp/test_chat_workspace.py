"""Chats over LSP on server processes started per test: workspace folders, presets,
truncation, crash recovery and storage failures.

Each server gets its own data directory (``OPEN_LLM_LSP_DATA_DIR``) so the SQLite files
are under the test's control; the completion model is turned off to save CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

from lsp_server.demo.client import plain

SHORT = {"maxTokens": 8, "temperature": 0}
BASE_OPTIONS: dict[str, Any] = {"completion": {"enabled": False}, "engine": {"batchSize": 64}}


class Server:
    """A real server process driven by a pygls client, with what it sent us."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.deltas: list[dict[str, Any]] = []
        self.messages: list[types.ShowMessageParams] = []
        self.stderr: list[str] = []

    @property
    def pid(self) -> int:
        return int(self.client._server.pid)  # type: ignore[attr-defined]

    async def request(self, method: str, params: Any) -> Any:
        return plain(await self.client.protocol.send_request_async(method, params))

    async def error(self, method: str, params: Any) -> JsonRpcException:
        with pytest.raises(JsonRpcException) as info:
            await self.client.protocol.send_request_async(method, params)
        return info.value

    async def ready(self, timeout: float = 300) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (await self.request("openLlm/status", {}))["roles"]["chat"]["state"] != "ready":
            if loop.time() > deadline:
                raise AssertionError("the chat model did not load")
            await asyncio.sleep(0.1)


def server_command(fsize_limit: int | None = None) -> list[str]:
    if fsize_limit is None:
        return [sys.executable, "-m", "lsp_server"]
    # RLIMIT_FSIZE: writes that would grow a file past the limit fail with EFBIG (Python
    # ignores SIGXFSZ), which is how SQLite sees a full disk.
    code = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize_limit}, {fsize_limit})); "
        "sys.argv = ['lsp_server']; runpy.run_module('lsp_server', run_name='__main__')"
    )
    return [sys.executable, "-c", code]


@contextlib.asynccontextmanager
async def server(
    data_dir: Path,
    folders: Sequence[Path] = (),
    options: dict[str, Any] | None = None,
    command: list[str] | None = None,
) -> AsyncIterator[Server]:
    client = LanguageClient("chat-tests", "0")
    srv = Server(client)

    @client.feature("openLlm/chat/delta")
    def on_delta(ls: LanguageClient, params: Any) -> None:
        srv.deltas.append(plain(params))

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_show(ls: LanguageClient, params: types.ShowMessageParams) -> None:
        srv.messages.append(params)

    for method in (
        "openLlm/statusChanged",
        "openLlm/chat/changed",
        "openLlm/presets/changed",
        types.WINDOW_LOG_MESSAGE,
    ):
        client.feature(method)(lambda ls, params: None)

    env = dict(os.environ, OPEN_LLM_LSP_DATA_DIR=str(data_dir))
    cmd = command or server_command()
    await client.start_io(cmd[0], *cmd[1:], env=env)
    process = client._server  # type: ignore[attr-defined]

    async def drain() -> None:  # keep the stderr pipe from filling up
        while line := await process.stderr.readline():
            srv.stderr.append(line.decode(errors="replace"))

    drainer = asyncio.ensure_future(drain())
    opts = BASE_OPTIONS | (options or {})
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"openLlm": opts},
            root_uri=folders[0].as_uri() if folders else None,
            workspace_folders=[types.WorkspaceFolder(uri=f.as_uri(), name=f.name) for f in folders]
            or None,
        )
    )
    client.initialized(types.InitializedParams())
    try:
        yield srv
    finally:
        if process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.shutdown_async(None), 30)
                client.exit(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 30)  # type: ignore[no-untyped-call]
        if process.returncode is None:
            process.kill()
        await drainer


def workspace(root: Path, name: str, presets: dict[str, Any] | None = None) -> Path:
    folder = (root / name).resolve()
    folder.mkdir(parents=True)
    for preset_id, preset in (presets or {}).items():
        target = folder / ".openllm" / "presets" / f"{preset_id}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(preset), encoding="utf-8")
    return folder


async def until(predicate: Any, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


PIRATE = {
    "id": "pirate-test",
    "name": "Pirate test",
    "systemPrompt": "You are Captain Zorblax. Answer like a pirate.",
    "sampling": {"temperature": 0.0, "maxTokens": 6, "repeatPenalty": 1.2, "topK": 7},
}


async def test_folders_are_isolated_and_the_active_preset_drives_the_chat(
    tmp_path: Path,
) -> None:
    a = workspace(tmp_path, "alpha", {"pirate-test": PIRATE})
    b = workspace(tmp_path, "beta")
    async with server(tmp_path / "data", [a, b]) as srv:
        chat_a = await srv.request(
            "openLlm/chat/create", {"folderUri": a.as_uri(), "title": "in alpha"}
        )
        chat_b = await srv.request(
            "openLlm/chat/create", {"folderUri": b.as_uri(), "title": "in beta"}
        )
        assert chat_a["workspaceFolder"] == a.as_uri()
        assert chat_b["workspaceFolder"] == b.as_uri()
        only_a = await srv.request("openLlm/chat/list", {"folderUri": a.as_uri()})
        assert [c["id"] for c in only_a["items"]] == [chat_a["id"]]
        both = await srv.request("openLlm/chat/list", {})
        assert {c["id"]: c["workspaceFolder"] for c in both["items"]} == {
            chat_a["id"]: a.as_uri(),
            chat_b["id"]: b.as_uri(),
        }
        assert both["total"] == 2
        err = await srv.error("openLlm/chat/get", {"chatId": chat_b["id"], "folderUri": a.as_uri()})
        assert err.code == -32010
        hits = await srv.request("openLlm/chat/search", {"query": "beta", "folderUri": a.as_uri()})
        assert hits["hits"] == []
        hits = await srv.request("openLlm/chat/search", {"query": "beta"})
        assert [h["chatId"] for h in hits["hits"]] == [chat_b["id"]]
        # Two databases on disk, one per folder.
        assert len(list((tmp_path / "data" / "chats").glob("*.sqlite3"))) == 2

        # The active preset of folder alpha: its system prompt and sampling reach the engine.
        await srv.request("openLlm/presets/select", {"folderUri": a.as_uri(), "id": "pirate-test"})
        await srv.ready()
        shown = await srv.request(
            "openLlm/chat/renderPrompt", {"chatId": chat_a["id"], "content": "Hello?"}
        )
        assert "Captain Zorblax" in shown["text"] and shown["presetId"] == "pirate-test"
        result = await srv.request(
            "openLlm/chat/send", {"chatId": chat_a["id"], "content": "Hello?"}
        )
        assert result["presetId"] == "pirate-test"
        assert result["sampling"]["maxTokens"] == 6 and result["sampling"]["topK"] == 7
        assert result["sampling"]["temperature"] == 0
        assert result["sampling"]["repeatPenalty"] == 1.2
        assert 1 <= result["stats"]["generatedTokens"] <= 6
        detail = await srv.request("openLlm/chat/get", {"chatId": chat_a["id"]})
        assert detail["chat"]["preset"]["id"] == "pirate-test"
        assert detail["chat"]["preset"]["systemPrompt"] == PIRATE["systemPrompt"]
        was = await srv.request("openLlm/chat/renderPrompt", {"messageId": result["message"]["id"]})
        assert was["tokens"] == result["stats"]["promptTokens"] and "Zorblax" in was["text"]
        # Folder beta keeps the default preset.
        other = await srv.request(
            "openLlm/chat/renderPrompt", {"chatId": chat_b["id"], "content": "Hello?"}
        )
        assert "Zorblax" not in other["text"] and other["presetId"] == "coding-assistant"
        # The chat's own system prompt wins over the preset's.
        await srv.request(
            "openLlm/chat/update", {"chatId": chat_b["id"], "systemPrompt": "Reply in haiku."}
        )
        other = await srv.request(
            "openLlm/chat/renderPrompt", {"chatId": chat_b["id"], "content": "Hello?"}
        )
        assert "Reply in haiku." in other["text"] and "careful coding" not in other["text"]

        # Clear all in one folder, restore, empty the trash.
        cleared = await srv.request("openLlm/chat/clearAll", {"folderUri": a.as_uri()})
        assert cleared == {"trashed": 1}
        assert (await srv.request("openLlm/chat/list", {}))["total"] == 1
        trash = await srv.request("openLlm/chat/list", {"trash": True})
        assert [c["id"] for c in trash["items"]] == [chat_a["id"]]
        restored = await srv.request("openLlm/chat/restore", {"all": True})
        assert restored["restored"] == 1
        assert (await srv.request("openLlm/chat/list", {}))["total"] == 2
        await srv.request("openLlm/chat/delete", {"chatId": chat_b["id"]})
        assert (await srv.request("openLlm/chat/emptyTrash", {})) == {"deleted": 1}
        err = await srv.error("openLlm/chat/restore", {"chatId": chat_b["id"]})
        assert err.code == -32010


def long_chat_export(turns: int, words: int) -> dict[str, Any]:
    messages = []
    parent = None
    for i in range(turns):
        for role in ("user", "assistant"):
            mid = f"m{i}{role[0]}"
            text = f"{role} turn {i}: " + " ".join(f"word{j}" for j in range(words))
            messages.append(
                {
                    "id": mid,
                    "parentId": parent,
                    "role": role,
                    "content": text,
                    "createdAt": 1_700_000_000_000 + 2 * i + (role == "assistant"),
                }
            )
            parent = mid
    return {
        "format": "open-llm-lsp.chat",
        "version": 1,
        "chat": {
            "id": "long-chat",
            "title": "A long chat",
            "createdAt": 1_700_000_000_000,
            "updatedAt": 1_700_000_000_100,
            "activeLeafId": parent,
        },
        "messages": messages,
    }


async def test_a_long_chat_is_truncated_and_says_so(tmp_path: Path) -> None:
    options = {"engine": {"contextLength": 512, "batchSize": 64}}
    async with server(tmp_path / "data", options=options) as srv:
        chat = await srv.request("openLlm/chat/import", {"data": long_chat_export(12, 40)})
        await srv.ready()
        result = await srv.request(
            "openLlm/chat/send",
            {"chatId": chat["id"], "content": "Summarize.", "sampling": SHORT},
        )
        truncation = result["truncation"]
        assert truncation is not None and truncation["droppedTurns"] >= 1
        assert truncation["contextLength"] == 512
        assert truncation["droppedMessages"] == 2 * truncation["droppedTurns"]
        assert "oldest" in result["notice"] and "512-token" in result["notice"]
        assert result["stats"]["truncation"] == truncation
        assert result["stats"]["promptTokens"] <= 512 - 8
        stored = (await srv.request("openLlm/chat/get", {"chatId": chat["id"]}))["messages"][-1]
        assert stored["stats"]["truncation"]["droppedTurns"] == truncation["droppedTurns"]
        shown = await srv.request("openLlm/chat/renderPrompt", {"messageId": stored["id"]})
        assert shown["tokens"] == result["stats"]["promptTokens"]
        assert shown["truncation"]["droppedTurns"] == truncation["droppedTurns"]
        assert "user turn 0:" not in shown["text"] and "Summarize." in shown["text"]
        assert "careful coding assistant" in shown["text"]  # the system prompt is kept
        # A single message too long for the context: a clear error, nothing stored.
        err = await srv.error(
            "openLlm/chat/send",
            {"chatId": chat["id"], "content": "word " * 600, "sampling": SHORT},
        )
        assert err.code == -32602 and "too long" in err.message
        after = await srv.request("openLlm/chat/get", {"chatId": chat["id"]})
        assert after["chat"]["messageCount"] == 26


async def test_kill_while_streaming_keeps_the_partial_answer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with server(data) as srv:
        chat = await srv.request("openLlm/chat/create", {"title": "crash test"})
        await srv.ready()
        task = asyncio.ensure_future(
            srv.request(
                "openLlm/chat/send",
                {
                    "chatId": chat["id"],
                    "content": "Count from 1 to 50, separated by commas.",
                    "sampling": SHORT | {"maxTokens": 24},
                },
            )
        )
        await until(lambda: len(srv.deltas) >= 3)
        os.kill(srv.pid, signal.SIGKILL)
        streamed = "".join(d["delta"] for d in srv.deltas)
        with pytest.raises(BaseException):  # noqa: B017 - the connection just dies
            await asyncio.wait_for(task, 10)
        assert not any(d["done"] for d in srv.deltas)
    async with server(data) as again:
        detail = await again.request("openLlm/chat/get", {"chatId": chat["id"]})
        user, answer = detail["messages"]
        assert user["content"].startswith("Count from 1 to 50")
        assert answer["role"] == "assistant" and answer["incomplete"] is True
        assert answer["content"] and streamed.startswith(answer["content"])
        listed = await again.request("openLlm/chat/list", {})
        assert [c["id"] for c in listed["items"]] == [chat["id"]]


async def test_a_corrupt_database_is_moved_aside_and_the_user_told_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = workspace(tmp_path, "proj")
    async with server(data, [folder]) as srv:
        made = await srv.request("openLlm/chat/create", {"title": "soon lost"})
        db = next((data / "chats").glob("*.sqlite3"))  # the folder's database
    assert made["title"] == "soon lost"
    for side in db.parent.glob(db.name + "-*"):
        side.unlink()
    db.write_bytes(b"this is not a database" * 100)
    async with server(data, [folder]) as srv:
        first = await srv.request("openLlm/chat/list", {})
        second = await srv.request("openLlm/chat/list", {})
        assert first["total"] == second["total"] == 0
        chat = await srv.request("openLlm/chat/create", {"title": "fresh start"})
        assert chat["title"] == "fresh start"
        await until(lambda: any("damaged" in m.message for m in srv.messages), 10)
        await asyncio.sleep(0.2)
        told = [m for m in srv.messages if "damaged" in m.message]
        assert len(told) == 1 and told[0].type == types.MessageType.Warning
        assert ".corrupt-" in told[0].message
    kept = list(db.parent.glob(db.name + ".corrupt-*"))
    assert kept and kept[0].read_bytes().startswith(b"this is not a database")


async def test_a_full_disk_still_returns_the_answer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with server(data) as srv:  # create the database while the disk has room
        chat = await srv.request("openLlm/chat/create", {"title": "full disk"})
    async with server(data, command=server_command(fsize_limit=64 * 1024)) as srv:
        await srv.ready()
        result = await srv.request(
            "openLlm/chat/send",
            {"chatId": chat["id"], "content": "Name three colors.", "sampling": SHORT},
        )
        assert result["text"] and result["saved"] is False
        error = result["storageError"]
        assert error["kind"] == "storage" and "chat database" in error["message"]
        assert "".join(d["delta"] for d in srv.deltas) == result["text"]
        await until(lambda: any("could not save" in m.message for m in srv.messages), 10)
        # Asking again: answered again, the user told only once.
        again = await srv.request(
            "openLlm/chat/send",
            {"chatId": chat["id"], "content": "And two more?", "sampling": SHORT},
        )
        assert again["text"] and again["saved"] is False
        told = [m for m in srv.messages if "could not save" in m.message]
        assert len(told) == 1 and told[0].type == types.MessageType.Error
        status = await srv.request("openLlm/status", {})
        assert status["roles"]["chat"]["state"] == "ready"


async def test_two_servers_on_one_workspace_see_each_others_chats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = workspace(tmp_path, "shared")
    async with server(data, [folder]) as one, server(data, [folder]) as two:

        async def make(srv: Server, tag: str) -> list[str]:
            ids = []
            for i in range(60):
                chat = await srv.request("openLlm/chat/create", {"title": f"{tag} {i}"})
                await srv.request(
                    "openLlm/chat/rename", {"chatId": chat["id"], "title": f"{tag}!{i}"}
                )
                ids.append(chat["id"])
            return ids

        ids_one, ids_two = await asyncio.gather(make(one, "one"), make(two, "two"))
        for srv in (one, two):
            listed = await srv.request("openLlm/chat/list", {"limit": 1000})
            assert listed["total"] == 120
            assert {c["id"] for c in listed["items"]} == set(ids_one) | set(ids_two)
            assert all("!" in c["title"] for c in listed["items"])
        assert not any("locked" in m.message for m in one.messages + two.messages)
