"""Chats over LSP on the shared session server (no workspace folder: its own store).

Real server process, real SmolLM2 model, real SQLite file. Generations stay short
(at most 24 tokens) and greedy.
"""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from lsp_server.chat.actions import ACTIONS
from lsp_server.demo.client import plain
from tests.lsp.conftest import request, wait_state

SHORT = {"maxTokens": 12, "temperature": 0}
"""Sampling overrides for tests: short and greedy (the rest from the default preset)."""


def chat_deltas(client: LanguageClient) -> list[dict[str, Any]]:
    """``openLlm/chat/delta`` notifications received by ``client`` (recorded once)."""
    existing = getattr(client, "chat_deltas", None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    deltas: list[dict[str, Any]] = []

    def handler(ls: Any, params: Any) -> None:
        deltas.append(plain(params))

    client.feature("openLlm/chat/delta")(handler)
    client.chat_deltas = deltas  # type: ignore[attr-defined]
    return deltas


async def until(predicate: Any, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def rpc_error(client: LanguageClient, method: str, params: Any) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async(method, params)
    return info.value


def code_actions_by_kind(client: LanguageClient, actions: Any) -> dict[str, dict[str, Any]]:
    """Code actions by kind, as plain JSON.

    lsprotocol's client-side hook structures any CodeAction that has a ``command`` as a
    Command (with the action's command object as a Python repr in ``Command.command``, the
    rest dropped); the wire JSON is a proper CodeAction. This recovers title, kind and
    command.
    """
    out = {}
    for item in actions or []:
        data = client.protocol._converter.unstructure(item)
        if isinstance(data.get("command"), str) and data["command"].startswith("{"):
            command = ast.literal_eval(data["command"])
            data = {"title": data["title"], "kind": _KIND_OF[data["title"]], "command": command}
        out[data["kind"]] = data
    return out


_KIND_OF = {a.title: a.kind for a in ACTIONS}


async def new_chat(client: LanguageClient, **params: Any) -> dict[str, Any]:
    return await request(client, "openLlm/chat/create", params)  # type: ignore[no-any-return]


async def send(client: LanguageClient, chat_id: str, content: str, **extra: Any) -> Any:
    params = {"chatId": chat_id, "content": content, "sampling": SHORT, "generateTitle": False}
    params.update(extra)
    return await request(client, "openLlm/chat/send", params)


async def test_send_streams_the_answer_and_stores_it_with_stats(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    deltas = chat_deltas(client)
    chat = await new_chat(client)
    assert chat["title"] == "New chat" and chat["workspaceFolder"] == "openllm://no-workspace"
    result = await send(client, chat["id"], "Name three colors.", generateTitle=True)
    answer = result["message"]
    mine = [d for d in deltas if d["messageId"] == answer["id"]]
    pieces = [d for d in mine if not d["done"]]
    assert len(pieces) >= 2
    assert "".join(d["delta"] for d in pieces) == result["text"] == answer["content"]
    assert result["text"].strip()
    done = mine[-1]
    assert done["done"] is True and done["incomplete"] is False
    assert done["chatId"] == chat["id"] and done["requestId"] == result["requestId"]
    stats = done["stats"]
    assert stats == result["stats"]
    assert 1 <= stats["generatedTokens"] <= 12
    assert stats["promptTokens"] > 20 and stats["tokensPerS"] > 0 and stats["firstTokenMs"] > 0
    assert stats["stopReason"] in ("eos", "length") and stats["truncation"] is None
    # The sampling that reached the engine: the preset's, with the request's overrides.
    assert result["presetId"] == "coding-assistant"
    assert result["sampling"]["temperature"] == 0 and result["sampling"]["maxTokens"] == 12
    assert result["sampling"]["topK"] == 40 and result["sampling"]["topP"] == 0.95
    assert result["sampling"]["repeatPenalty"] == 1.05  # the default preset's

    detail = await request(client, "openLlm/chat/get", {"chatId": chat["id"]})
    user, stored = detail["messages"]
    assert user["role"] == "user" and user["content"] == "Name three colors."
    assert stored["id"] == answer["id"] and stored["content"] == result["text"]
    assert stored["incomplete"] is False
    st = stored["stats"]
    assert st["completionTokens"] == stats["generatedTokens"]
    assert st["promptTokens"] == stats["promptTokens"]
    assert st["stopReason"] == stats["stopReason"] and st["tokensPerS"] > 0 and st["ttftMs"] > 0
    assert st["model"] == stats["model"] and st["model"]
    # A title was generated (or at least the first words), and the preset was recorded.
    assert detail["chat"]["title"] != "New chat" and result["title"] == detail["chat"]["title"]
    assert detail["chat"]["preset"]["id"] == "coding-assistant"
    listed = await request(client, "openLlm/chat/list", {})
    assert chat["id"] in [c["id"] for c in listed["items"]]

    # renderPrompt: the exact prompt of that answer (the preset's system prompt in it).
    shown = await request(client, "openLlm/chat/renderPrompt", {"messageId": answer["id"]})
    assert shown["tokens"] == stats["promptTokens"]
    assert "careful coding assistant" in shown["text"]
    assert shown["text"].rstrip().endswith("assistant")
    assert "Name three colors." in shown["text"]
    assert shown["messages"][0]["role"] == "system" and shown["presetId"] == "coding-assistant"
    # ... and the prompt a next message would get, with the history and without thinking.
    nxt = await request(
        client, "openLlm/chat/renderPrompt", {"chatId": chat["id"], "content": "And two more?"}
    )
    assert [m["role"] for m in nxt["messages"]] == ["system", "user", "assistant", "user"]
    assert nxt["tokens"] > shown["tokens"] and nxt["truncation"] is None


async def test_cancel_keeps_the_partial_answer(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    deltas = chat_deltas(client)
    chat = await new_chat(client)
    task = asyncio.ensure_future(
        send(
            client,
            chat["id"],
            "Count from 1 to 50, separated by commas.",
            sampling=SHORT | {"maxTokens": 24},
        )
    )
    await until(lambda: any(d["chatId"] == chat["id"] for d in deltas))
    busy = await rpc_error(
        client, "openLlm/chat/send", {"chatId": chat["id"], "content": "Hi", "sampling": SHORT}
    )
    assert busy.code == -32011  # one answer at a time per chat
    cancelled = await request(client, "openLlm/chat/cancel", {"chatId": chat["id"]})
    assert cancelled == {"cancelled": True}
    result = await task
    assert result["incomplete"] is True and result["stats"]["stopReason"] == "cancelled"
    assert 0 < result["stats"]["generatedTokens"] < 24
    streamed = "".join(d["delta"] for d in deltas if d["chatId"] == chat["id"])
    assert result["text"] == streamed and streamed
    detail = await request(client, "openLlm/chat/get", {"chatId": chat["id"]})
    stored = detail["messages"][-1]
    assert stored["incomplete"] is True and stored["content"] == streamed
    assert stored["stats"]["stopReason"] == "cancelled"
    again = await request(client, "openLlm/chat/cancel", {"chatId": chat["id"]})
    assert again == {"cancelled": False}


async def test_cancel_request_keeps_the_partial_answer(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    deltas = chat_deltas(client)
    chat = await new_chat(client)
    msg_id = f"cancel-me-{chat['id']}"
    fut = asyncio.ensure_future(
        client.protocol.send_request_async(
            "openLlm/chat/send",
            {
                "chatId": chat["id"],
                "content": "Count from 1 to 50, separated by commas.",
                "sampling": SHORT | {"maxTokens": 24},
                "generateTitle": False,
            },
            msg_id=msg_id,
        )
    )
    await until(lambda: any(d["chatId"] == chat["id"] for d in deltas))
    client.cancel_request(types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as info:
        await fut
    assert info.value.code == -32800
    await until(lambda: any(d["chatId"] == chat["id"] and d["done"] for d in deltas))
    done = next(d for d in deltas if d["chatId"] == chat["id"] and d["done"])
    assert done["incomplete"] is True and done["stats"]["stopReason"] == "cancelled"
    streamed = "".join(d["delta"] for d in deltas if d["chatId"] == chat["id"])
    detail = await request(client, "openLlm/chat/get", {"chatId": chat["id"]})
    stored = detail["messages"][-1]
    assert stored["role"] == "assistant" and stored["incomplete"] is True
    assert stored["content"] == streamed and streamed
    assert detail["generating"] is False


async def test_regenerate_edit_branch_and_switch_build_the_tree(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    chat = await new_chat(client)
    first = await send(client, chat["id"], "Say hi.", sampling=SHORT | {"maxTokens": 6})
    u1, a1 = first["userMessage"]["id"], first["message"]["id"]

    regen = await request(
        client,
        "openLlm/chat/regenerate",
        {
            "messageId": a1,
            "sampling": {"maxTokens": 6, "temperature": 1.5, "seed": 7},
        },
    )
    a2 = regen["message"]["id"]
    assert regen["userMessage"]["id"] == u1 and regen["message"]["parentId"] == u1
    detail = await request(client, "openLlm/chat/get", {"chatId": chat["id"]})
    assert [m["id"] for m in detail["messages"]] == [u1, a2]
    assert (detail["messages"][1]["siblingCount"], detail["messages"][1]["siblingIndex"]) == (2, 1)

    edited = await request(
        client,
        "openLlm/chat/edit",
        {"messageId": u1, "content": "Say bye.", "sampling": SHORT | {"maxTokens": 6}},
    )
    u2, a3 = edited["userMessage"]["id"], edited["message"]["id"]
    assert u2 != u1 and edited["userMessage"]["parentId"] is None
    detail = await request(client, "openLlm/chat/get", {"chatId": chat["id"]})
    assert [m["id"] for m in detail["messages"]] == [u2, a3]
    assert detail["messages"][0]["content"] == "Say bye."
    assert (detail["messages"][0]["siblingCount"], detail["messages"][0]["siblingIndex"]) == (2, 1)
    # The edited prompt has no trace of the old branch.
    shown = await request(client, "openLlm/chat/renderPrompt", {"messageId": a3})
    assert "Say hi." not in shown["text"] and "Say bye." in shown["text"]

    switched = await request(client, "openLlm/chat/switchBranch", {"messageId": u1})
    assert [m["id"] for m in switched["messages"]] == [u1, a2]  # newest answer under u1
    switched = await request(client, "openLlm/chat/switchBranch", {"messageId": a1})
    assert [m["id"] for m in switched["messages"]] == [u1, a1]
    assert switched["chat"]["activeLeafId"] == a1
    again = await request(client, "openLlm/chat/get", {"chatId": chat["id"]})
    assert [m["id"] for m in again["messages"]] == [u1, a1]

    branch = await request(client, "openLlm/chat/branch", {"messageId": a1})
    assert branch["chat"]["id"] != chat["id"] and branch["chat"]["title"].endswith("(branch)")
    assert [m["content"] for m in branch["messages"]] == ["Say hi.", first["text"]]
    assert branch["chat"]["messageCount"] == 2

    # Edit without generating: a new branch holding just the edited question.
    only = await request(
        client, "openLlm/chat/edit", {"messageId": u1, "content": "Say yo.", "generate": False}
    )
    assert only["message"] is None and only["userMessage"]["siblingCount"] == 3


async def test_duplicate_search_export_import(client: LanguageClient) -> None:
    await wait_state(client, "ready")
    chat = await new_chat(client, title="Colors talk")
    result = await send(client, chat["id"], "Name three colors.")
    asked = {"name", "three", "colors", "talk"}
    words = [w for w in re.findall(r"[A-Za-z]{4,}", result["text"]) if w.lower() not in asked]
    words.sort(key=len, reverse=True)
    assert words, result["text"]

    copy = await request(client, "openLlm/chat/duplicate", {"chatId": chat["id"]})
    assert copy["id"] != chat["id"] and copy["title"] == "Colors talk (copy)"
    copied = await request(client, "openLlm/chat/get", {"chatId": copy["id"]})
    original = await request(client, "openLlm/chat/get", {"chatId": chat["id"]})
    assert [m["content"] for m in copied["messages"]] == [
        m["content"] for m in original["messages"]
    ]
    assert {m["id"] for m in copied["messages"]}.isdisjoint(m["id"] for m in original["messages"])

    found = await request(client, "openLlm/chat/search", {"query": words[0]})
    hit = next(h for h in found["hits"] if h["chatId"] == chat["id"])
    assert hit["messageId"] == result["message"]["id"] and hit["role"] == "assistant"
    assert f"«{words[0].lower()}»" in hit["snippet"].lower()
    assert hit["workspaceFolder"] == "openllm://no-workspace"
    titled = await request(client, "openLlm/chat/search", {"query": "colors talk"})
    assert chat["id"] in [h["chatId"] for h in titled["hits"]]

    md = await request(client, "openLlm/chat/export", {"chatId": chat["id"], "format": "markdown"})
    assert md["text"].startswith("# Colors talk") and "## Assistant" in md["text"]
    exported = await request(client, "openLlm/chat/export", {"chatId": chat["id"]})
    data = exported["data"]
    assert data["format"] == "open-llm-lsp.chat" and len(data["messages"]) == 2
    # Delete the chat for good, import the export: it comes back exactly.
    await request(client, "openLlm/chat/delete", {"chatId": chat["id"]})
    await request(client, "openLlm/chat/emptyTrash", {})
    err = await rpc_error(client, "openLlm/chat/get", {"chatId": chat["id"]})
    assert err.code == -32010
    imported = await request(client, "openLlm/chat/import", {"text": exported["text"]})
    assert imported["id"] == chat["id"]
    again = await request(client, "openLlm/chat/export", {"chatId": chat["id"]})
    assert again["data"] == data
    # A second import collides: new ids, same content.
    twin = await request(client, "openLlm/chat/import", {"data": data})
    assert twin["id"] != chat["id"] and twin["title"] == "Colors talk"


async def test_pin_rename_folders_and_move(client: LanguageClient) -> None:
    a = await new_chat(client, title="alpha chat")
    b = await new_chat(client, title="beta chat")
    pinned = await request(client, "openLlm/chat/pin", {"chatId": a["id"]})
    assert pinned["pinned"] is True
    listed = await request(client, "openLlm/chat/list", {"limit": 1000})
    assert listed["items"][0]["pinned"] is True
    await request(client, "openLlm/chat/unpin", {"chatId": a["id"]})
    renamed = await request(client, "openLlm/chat/rename", {"chatId": b["id"], "title": "gamma"})
    assert renamed["title"] == "gamma"
    folder = await request(client, "openLlm/chat/folder/create", {"name": "Work"})
    moved = await request(
        client, "openLlm/chat/move", {"chatId": b["id"], "folderId": folder["id"]}
    )
    assert moved["folderId"] == folder["id"]
    inside = await request(client, "openLlm/chat/list", {"folderId": folder["id"]})
    assert [c["id"] for c in inside["items"]] == [b["id"]]
    renamed_folder = await request(
        client, "openLlm/chat/folder/rename", {"folderId": folder["id"], "name": "Job"}
    )
    assert renamed_folder["name"] == "Job" and renamed_folder["chatCount"] == 1
    folders = await request(client, "openLlm/chat/folder/list", {})
    assert folder["id"] in [f["id"] for f in folders["folders"]]
    clash = await rpc_error(client, "openLlm/chat/folder/create", {"name": "job"})
    assert clash.code == -32011
    gone = await request(client, "openLlm/chat/folder/delete", {"folderId": folder["id"]})
    assert gone["movedChats"] == 1
    after = await request(client, "openLlm/chat/get", {"chatId": b["id"]})
    assert after["chat"]["folderId"] is None
    override = await request(
        client, "openLlm/chat/update", {"chatId": a["id"], "systemPrompt": "Answer in French."}
    )
    assert override["systemPrompt"] == "Answer in French."


async def test_attachments_and_code_actions(client: LanguageClient, tmp_path: Path) -> None:
    await wait_state(client, "ready")
    deltas = chat_deltas(client)
    source = "def add(a, b):\n    return a + b\n\n\ndef unused():\n    return 0\n"
    path = tmp_path / "calc.py"
    path.write_text("stale text on disk\n", encoding="utf-8")
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=source
            )
        )
    )
    chat = await new_chat(client)
    selection = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
    shown = await request(
        client,
        "openLlm/chat/renderPrompt",
        {
            "chatId": chat["id"],
            "content": "What does this do?",
            "attachments": [{"uri": uri, "range": selection}],
        },
    )
    assert f"File `{path.as_posix()}`, lines 1-2:\n```python\ndef add(a, b):" in shown["text"]
    assert "unused" not in shown["text"] and "stale" not in shown["text"]
    # A file that is not open is read from disk.
    other = tmp_path / "notes.txt"
    other.write_text("remember the milk\n", encoding="utf-8")
    whole = await request(
        client,
        "openLlm/chat/renderPrompt",
        {"chatId": chat["id"], "content": "Summarize.", "attachments": [{"uri": other.as_uri()}]},
    )
    assert "remember the milk" in whole["text"]
    missing = await rpc_error(
        client,
        "openLlm/chat/send",
        {
            "chatId": chat["id"],
            "content": "x",
            "attachments": [{"uri": (tmp_path / "no").as_uri()}],
        },
    )
    assert missing.code == -32010

    diagnostic = types.Diagnostic(
        range=types.Range(types.Position(1, 4), types.Position(1, 16)),
        message="suspicious addition",
        severity=types.DiagnosticSeverity.Warning,
        source="lint",
    )
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(0, 0), types.Position(2, 0)),
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    by_kind = code_actions_by_kind(client, actions)
    assert len(by_kind) == 4
    assert any("Explain" in a["title"] for a in by_kind.values())
    fix = by_kind["quickfix.openLlm.fix"]
    assert fix["command"]["command"] == "openLlm.chat.start"
    fix_arg = fix["command"]["arguments"][0]
    assert "suspicious addition" in fix_arg["content"] and fix_arg["action"] == "fix"
    assert fix_arg["attachments"][0]["uri"] == uri
    only_fix = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(0, 0), types.Position(2, 0)),
            context=types.CodeActionContext(diagnostics=[], only=["quickfix"]),
        )
    )
    assert list(code_actions_by_kind(client, only_fix)) == ["quickfix.openLlm.fix"]
    empty = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(1, 2), types.Position(1, 2)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert not empty

    # Run the Explain command as a generic client would: a new chat, streamed, answered.
    explain = by_kind["refactor.openLlm.explain"]
    argument = explain["command"]["arguments"][0] | {"sampling": SHORT}
    ran = plain(
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="openLlm.chat.start", arguments=[argument])
        )
    )
    assert ran["title"] == "Explain calc.py:1-2" and ran["text"]
    assert any(d["messageId"] == ran["message"]["id"] and d["done"] for d in deltas)
    started = await request(client, "openLlm/chat/get", {"chatId": ran["chatId"]})
    user = started["messages"][0]
    assert user["attachments"][0]["content"] == "def add(a, b):\n    return a + b\n"
    assert "Explain" in user["content"]
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


async def test_errors_are_clear_and_the_server_survives(client: LanguageClient) -> None:
    for method, params in [
        ("openLlm/chat/get", {"chatId": "nope"}),
        ("openLlm/chat/rename", {"chatId": "nope", "title": "x"}),
        ("openLlm/chat/send", {"chatId": "nope", "content": "hi"}),
        ("openLlm/chat/delete", {"chatId": "nope"}),
        ("openLlm/chat/edit", {"messageId": "nope", "content": "hi"}),
        ("openLlm/chat/regenerate", {"messageId": "nope"}),
        ("openLlm/chat/switchBranch", {"messageId": "nope"}),
        ("openLlm/chat/branch", {"messageId": "nope"}),
        ("openLlm/chat/move", {"chatId": "nope", "folderId": None}),
        ("openLlm/chat/folder/rename", {"folderId": "nope", "name": "x"}),
        ("openLlm/chat/list", {"folderUri": "file:///not/open"}),
    ]:
        err = await rpc_error(client, method, params)
        assert err.code == -32010, (method, err)
        assert plain(err.data)["kind"] == "notFound"
    chat = await new_chat(client)
    for params, fragment in [
        ({"chatId": chat["id"], "content": "   "}, "empty"),
        ({"chatId": chat["id"]}, "content"),
        ({"content": "hi"}, "chatId"),
        ({"chatId": chat["id"], "content": "hi", "bogus": 1}, "bogus"),
        ({"chatId": chat["id"], "content": 5}, "content"),
        ({"chatId": chat["id"], "content": "hi", "sampling": {"maxTokens": 0}}, "maxTokens"),
        ([1, 2], "must be an object"),
    ]:
        err = await rpc_error(client, "openLlm/chat/send", params)
        assert err.code == -32602, (params, err)
        assert fragment in err.message
    for method, params in [
        ("openLlm/chat/rename", {"chatId": chat["id"], "title": "  "}),
        ("openLlm/chat/restore", {}),
        ("openLlm/chat/search", {"query": ""}),
        ("openLlm/chat/import", {"data": {"format": "something else"}}),
        ("openLlm/chat/import", {"text": "{not json"}),
        ("openLlm/chat/list", {"sort": "size"}),
        ("openLlm/chat/renderPrompt", {"chatId": chat["id"]}),
    ]:
        err = await rpc_error(client, method, params)
        assert err.code == -32602, (method, err)
    detail = await request(client, "openLlm/chat/get", {"chatId": chat["id"]})
    assert detail["messages"] == []  # nothing stored by the failed sends
    status = await request(client, "openLlm/status")
    assert status["state"] == "ready"
