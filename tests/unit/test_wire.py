"""protocol/wire.py: domain records (real storage and engine records) → camelCase JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from lsp_server.engine.base import GenerationStats
from lsp_server.protocol.wire import camel, to_wire
from lsp_server.storage import ChatStore, MessageStats


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("id", "id"),
        ("chat_id", "chatId"),
        ("tokens_per_s", "tokensPerS"),
        ("ttft_ms", "ttftMs"),
        ("active_leaf_id", "activeLeafId"),
    ],
)
def test_camel(name: str, expected: str) -> None:
    assert camel(name) == expected


def test_storage_records_become_camel_case_json(store: ChatStore) -> None:
    chat = store.create_chat("wire", preset={"systemPrompt": "kept as is", "top_k": 1})
    u = store.append_message(chat.id, None, "user", "q", attachments=[{"uri": "file:///x"}])
    store.append_message(
        chat.id,
        u.id,
        "assistant",
        "a",
        stats=MessageStats(prompt_tokens=1, completion_tokens=2, ttft_ms=3.0, tokens_per_s=4.0),
    )
    wire = to_wire(store.get_chat(chat.id))
    assert {
        "id",
        "title",
        "folderId",
        "createdAt",
        "updatedAt",
        "activeLeafId",
        "deletedAt",
        "messageCount",
        "workspaceFolder",
        "systemPrompt",
        "pinned",
    } <= set(wire["chat"])
    assert not any("_" in key for key in wire["chat"])
    # A dict field holds JSON already: its keys are not touched.
    assert wire["chat"]["preset"] == {"systemPrompt": "kept as is", "top_k": 1}
    question, answer = wire["messages"]
    assert question["attachments"] == [{"uri": "file:///x"}] and question["stats"] is None
    assert question["siblingIds"] == [u.id] and question["siblingCount"] == 1
    assert {"chatId", "parentId", "siblingCount", "siblingIndex", "createdAt"} <= set(answer)
    assert answer["stats"]["promptTokens"] == 1 and answer["stats"]["tokensPerS"] == 4.0
    assert answer["stats"]["ttftMs"] == 3.0 and answer["stats"]["truncation"] is None
    page = to_wire(store.list_chats())
    assert page["total"] == 1 and page["items"][0]["id"] == chat.id
    assert set(page) == {"items", "total", "offset", "limit"}
    hits = to_wire(store.search("wire"))
    assert [h["chatId"] for h in hits] == [chat.id]
    assert {"chatTitle", "titleHighlight", "matchedIn", "workspaceFolder"} <= set(hits[0])
    folder = to_wire(store.create_folder("Work"))
    assert set(folder) == {"id", "name", "createdAt", "chatCount", "workspaceFolder"}
    json.dumps([wire, page, hits, folder])  # JSON-ready all the way down


def test_engine_stats_keep_their_wire_names() -> None:
    stats = GenerationStats(
        prompt_tokens=5, first_token_ms=1.5, tokens_per_s=2.0, stop_reason="eos"
    )
    wire = to_wire(stats)
    assert wire["promptTokens"] == 5 and wire["firstTokenMs"] == 1.5
    assert wire["tokensPerS"] == 2.0 and wire["stopReason"] == "eos"
    assert list(wire) == [camel(name) for name in vars(stats)]


@dataclass
class _Inner:
    some_value: int
    other: str | None = None


@dataclass
class _Outer:
    chat_id: str
    inner: _Inner = field(metadata={"flatten": True})
    extra: dict[str, Any] = field(default_factory=dict, metadata={"flatten": True})
    maybe_gone: bool | None = field(default=None, metadata={"omit_none": True})
    kept_none: str | None = None
    items: tuple[_Inner, ...] = ()


def test_flatten_and_omit_none() -> None:
    value = _Outer("c", _Inner(1), {"path": "/p"}, items=(_Inner(2, "x"),))
    assert to_wire(value) == {
        "chatId": "c",
        "someValue": 1,
        "other": None,
        "path": "/p",
        "keptNone": None,
        "items": [{"someValue": 2, "other": "x"}],
    }
    value.maybe_gone = False
    wire = to_wire(value)
    assert wire["maybeGone"] is False
    assert list(wire) == ["chatId", "someValue", "other", "path", "maybeGone", "keptNone", "items"]
