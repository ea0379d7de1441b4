"""Export to JSON and Markdown; JSON import round-trips exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lsp_server.core.errors import InvalidParams
from lsp_server.storage import ChatStore, MessageStats


def rich_chat(store: ChatStore) -> str:
    folder = store.create_folder("Research")
    chat = store.create_chat(
        "Rich chat",
        folder_id=folder.id,
        preset={"temperature": 0.7, "topK": 40},
        system_prompt="You are terse.",
        model="qwen2.5-coder-7b.gguf",
    )
    store.set_pinned(chat.id, True)
    u = store.append_message(
        chat.id,
        None,
        "user",
        "Explain «quotes» and ünïcode \u2014 please",
        attachments=[{"name": "main.py", "uri": "file:///w/main.py", "range": [1, 5]}],
    )
    store.append_message(
        chat.id,
        u.id,
        "assistant",
        "First answer",
        thinking="Let me think...",
        stats=MessageStats(
            prompt_tokens=120,
            completion_tokens=33,
            ttft_ms=91.25,
            tokens_per_s=41.5,
            stop_reason="stop",
            model="qwen",
            truncation={"droppedTurns": 2, "truncated": True},
        ),
    )
    store.append_message(chat.id, u.id, "assistant", "", incomplete=True)
    store.edit_user_message(u.id, "Explain quotes")
    return chat.id


def test_json_round_trip_into_fresh_database(store: ChatStore, tmp_path: Path) -> None:
    chat_id = rich_chat(store)
    exported = json.loads(json.dumps(store.export_json(chat_id)))
    assert exported["format"] == "open-llm-lsp.chat" and exported["version"] == 1
    assert len(exported["messages"]) == 4
    assert exported["chat"]["folder"] == "Research"
    other_ws = tmp_path / "other"
    other_ws.mkdir()
    with ChatStore(str(other_ws)) as other:
        imported = other.import_json(exported)
        assert imported.id == chat_id  # no collision: ids kept
        assert other.export_json(imported.id) == exported
        assert [f.name for f in other.list_folders()] == ["Research"]
        mine, theirs = store.get_chat(chat_id), other.get_chat(chat_id)
        assert mine.messages == theirs.messages
        for key in (
            "title",
            "pinned",
            "preset",
            "system_prompt",
            "model",
            "active_leaf_id",
            "created_at",
            "updated_at",
            "message_count",
        ):
            assert getattr(mine.chat, key) == getattr(theirs.chat, key), key


def test_json_round_trip_with_id_collision(store: ChatStore) -> None:
    chat_id = rich_chat(store)
    exported = store.export_json(chat_id)
    imported = store.import_json(json.loads(json.dumps(exported)))
    assert imported.id != chat_id
    again = store.export_json(imported.id)
    mapping: dict[Any, Any] = {None: None, chat_id: imported.id}
    for old, new in zip(exported["messages"], again["messages"], strict=True):
        mapping[old["id"]] = new["id"]
    assert len(set(mapping.values())) == len(mapping)  # every id regenerated, none shared
    expected = json.loads(json.dumps(exported))
    expected["chat"]["id"] = imported.id
    expected["chat"]["activeLeafId"] = mapping[expected["chat"]["activeLeafId"]]
    for m in expected["messages"]:
        m["id"] = mapping[m["id"]]
        m["parentId"] = mapping[m["parentId"]]
    assert again == expected
    assert [f.name for f in store.list_folders()] == ["Research"]  # matched, not duplicated
    assert store.get_chat(imported.id).chat.message_count == 4


def test_markdown_export(store: ChatStore) -> None:
    chat_id = rich_chat(store)
    store.switch_branch(store.export_json(chat_id)["messages"][1]["id"])
    md = store.export_markdown(chat_id)
    assert md.startswith("# Rich chat\n")
    assert "**System prompt:**" in md and "You are terse." in md
    assert "## User (1/2)" in md and "## Assistant (1/2)" in md
    assert "<details><summary>Thinking</summary>" in md and "Let me think..." in md
    assert "First answer" in md and "Attachment: main.py" in md
    assert "Explain quotes\n" not in md  # the other branch is not shown


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="something else"),
        lambda d: d.update(version=99),
        lambda d: d["chat"].update(title=""),
        lambda d: d["messages"][1].update(parentId="nope"),
        lambda d: d["messages"][0].update(role="robot"),
        lambda d: d["messages"][0].update(content=""),
        lambda d: d["chat"].update(activeLeafId="nope"),
        lambda d: d["messages"].append(dict(d["messages"][0])),
    ],
)
def test_import_rejects_malformed_exports(store: ChatStore, mutate: Any) -> None:
    chat = store.create_chat("x")
    u = store.append_message(chat.id, None, "user", "hello")
    store.append_message(chat.id, u.id, "assistant", "hi")
    data = json.loads(json.dumps(store.export_json(chat.id)))
    store.empty_trash()
    mutate(data)
    before = store.list_chats().total
    with pytest.raises(InvalidParams):
        store.import_json(data)
    assert store.list_chats().total == before
