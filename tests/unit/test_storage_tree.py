"""Message trees: append, edit, regenerate, switch_branch, branch, duplicate, streaming."""

from __future__ import annotations

import threading

import pytest

from lsp_server.core.errors import InvalidParams, NotFound
from lsp_server.storage import ACTIVE_LEAF, ChatStore, MessageStats


def contents(store: ChatStore, chat_id: str) -> list[str]:
    return [m.content for m in store.get_chat(chat_id).messages]


def test_append_builds_linear_branch_and_moves_leaf(store: ChatStore) -> None:
    chat = store.create_chat("t")
    u = store.append_message(chat.id, None, "user", "q1")
    a = store.append_message(chat.id, u.id, "assistant", "a1")
    u2 = store.append_message(chat.id, ACTIVE_LEAF, "user", "q2")
    assert u2.parent_id == a.id
    detail = store.get_chat(chat.id)
    assert [m.id for m in detail.messages] == [u.id, a.id, u2.id]
    assert detail.chat.active_leaf_id == u2.id
    assert detail.chat.message_count == 3
    assert all(m.sibling_count == 1 and m.sibling_index == 0 for m in detail.messages)


def test_edit_regenerate_switch_and_branch(store: ChatStore) -> None:
    chat = store.create_chat("tree")
    u1 = store.append_message(chat.id, None, "user", "question one")
    a1 = store.append_message(chat.id, u1.id, "assistant", "answer one")
    u2 = store.append_message(chat.id, a1.id, "user", "follow up")
    a2 = store.append_message(chat.id, u2.id, "assistant", "follow answer")

    # Edit the first user message: a new sibling root becomes the active branch.
    edited = store.edit_user_message(u1.id, "question one, edited")
    assert edited.parent_id is None and edited.role == "user"
    assert (edited.sibling_count, edited.sibling_index) == (2, 1)
    assert edited.sibling_ids == [u1.id, edited.id]
    detail = store.get_chat(chat.id)
    assert [m.content for m in detail.messages] == ["question one, edited"]
    assert (detail.messages[0].sibling_count, detail.messages[0].sibling_index) == (2, 1)
    a1e = store.append_message(chat.id, edited.id, "assistant", "answer to edit")
    assert contents(store, chat.id) == ["question one, edited", "answer to edit"]

    # Back to the original root: the whole old branch comes back down to its leaf.
    detail = store.switch_branch(u1.id)
    assert [m.id for m in detail.messages] == [u1.id, a1.id, u2.id, a2.id]
    assert (detail.messages[0].sibling_count, detail.messages[0].sibling_index) == (2, 0)
    assert detail.messages[0].sibling_ids == [u1.id, edited.id]  # for ‹ 1/2 › navigation
    assert detail.messages[0].sibling_ids == [u1.id, edited.id]

    # Regenerate a2: the returned parent is u2; the new answer is a sibling of a2.
    parent = store.prepare_regenerate(a2.id)
    assert parent.id == u2.id
    a2b = store.append_message(chat.id, parent.id, "assistant", "another follow answer")
    detail = store.get_chat(chat.id)
    assert [m.id for m in detail.messages] == [u1.id, a1.id, u2.id, a2b.id]
    assert (detail.messages[-1].sibling_count, detail.messages[-1].sibling_index) == (2, 1)
    assert store.prepare_regenerate(u2.id).id == u2.id

    # switch to the older answer, then via an ancestor: most recent child wins.
    assert [m.id for m in store.switch_branch(a2.id).messages][-1] == a2.id
    assert [m.id for m in store.switch_branch(u1.id).messages][-1] == a2b.id
    assert [m.id for m in store.switch_branch(edited.id).messages] == [edited.id, a1e.id]

    # Branch: a new chat with the history up to a1, original untouched.
    before = store.export_json(chat.id)
    branched = store.branch_chat(a1.id)
    assert branched.chat.id != chat.id
    assert [m.content for m in branched.messages] == ["question one", "answer one"]
    assert {m.id for m in branched.messages}.isdisjoint({u1.id, a1.id})
    assert branched.chat.message_count == 2
    assert branched.messages[1].parent_id == branched.messages[0].id
    assert store.export_json(chat.id) == before
    assert store.get_history(a2.id)[-1].id == a2.id
    assert [m.id for m in store.get_history(a2.id)] == [u1.id, a1.id, u2.id, a2.id]


def test_edit_and_regenerate_reject_wrong_roles(store: ChatStore) -> None:
    chat = store.create_chat()
    u = store.append_message(chat.id, None, "user", "q")
    a = store.append_message(chat.id, u.id, "assistant", "a")
    with pytest.raises(InvalidParams):
        store.edit_user_message(a.id, "x")
    with pytest.raises(InvalidParams):
        store.edit_user_message(u.id, "   ")
    root_answer = store.append_message(chat.id, None, "assistant", "orphan")
    with pytest.raises(InvalidParams):
        store.prepare_regenerate(root_answer.id)


def test_duplicate_is_a_deep_copy(store: ChatStore) -> None:
    chat = store.create_chat("orig", preset={"temperature": 0.2}, system_prompt="be brief")
    u = store.append_message(chat.id, None, "user", "q")
    store.append_message(chat.id, u.id, "assistant", "a", thinking="hmm")
    store.append_message(chat.id, u.id, "assistant", "b")
    store.edit_user_message(u.id, "q2")
    copy = store.duplicate_chat(chat.id)
    assert copy.id != chat.id and copy.title == "orig (copy)"
    assert copy.message_count == 4 and copy.preset == {"temperature": 0.2}
    assert copy.system_prompt == "be brief"
    src, dst = store.export_json(chat.id), store.export_json(copy.id)
    src_ids = {m["id"] for m in src["messages"]}
    assert src_ids.isdisjoint({m["id"] for m in dst["messages"]})
    # Same tree shape: map ids by position (both in creation order).
    mapping = {s["id"]: d["id"] for s, d in zip(src["messages"], dst["messages"], strict=True)}
    for s, d in zip(src["messages"], dst["messages"], strict=True):
        assert (s["content"], s["role"], s["thinking"]) == (d["content"], d["role"], d["thinking"])
        assert d["parentId"] == (mapping[s["parentId"]] if s["parentId"] else None)
    assert dst["chat"]["activeLeafId"] == mapping[src["chat"]["activeLeafId"]]
    # Changing the original leaves the copy alone.
    store.append_message(chat.id, ACTIVE_LEAF, "assistant", "new")
    store.rename_chat(chat.id, "renamed")
    assert store.get_chat_info(copy.id).message_count == 4
    assert store.get_chat_info(copy.id).title == "orig (copy)"


def test_streaming_updates(store: ChatStore) -> None:
    chat = store.create_chat()
    u = store.append_message(chat.id, None, "user", "explain")
    a = store.append_message(chat.id, u.id, "assistant", "", incomplete=True)
    for text in ("Par", "Partial ans", "Partial answer about zebras"):
        store.update_message(a.id, content=text, thinking="thinking " + text)
    store.update_message(
        a.id,
        incomplete=False,
        stats=MessageStats(
            prompt_tokens=12,
            completion_tokens=5,
            ttft_ms=80.5,
            tokens_per_s=42.0,
            stop_reason="stop",
            model="m.gguf",
            truncation={"droppedTurns": 1},
        ),
    )
    store.update_message(a.id, stats=MessageStats(completion_tokens=6))
    msg = store.get_chat(chat.id).messages[-1]
    assert msg.content == "Partial answer about zebras"
    assert msg.thinking == "thinking Partial answer about zebras"
    assert not msg.incomplete
    assert msg.stats is not None
    assert msg.stats.prompt_tokens == 12 and msg.stats.completion_tokens == 6
    assert msg.stats.truncation == {"droppedTurns": 1} and msg.stats.stop_reason == "stop"
    assert [h.message_id for h in store.search("zebras")] == [a.id]
    assert store.search("ans") == []  # the intermediate token is no longer indexed
    with pytest.raises(InvalidParams):
        store.update_message(u.id, content="")


def test_unknown_ids_and_bad_input(store: ChatStore) -> None:
    chat = store.create_chat()
    missing = "0" * 32
    for call in (
        lambda: store.get_chat(missing),
        lambda: store.rename_chat(missing, "x"),
        lambda: store.delete_chat(missing),
        lambda: store.append_message(missing, None, "user", "hi"),
        lambda: store.append_message(chat.id, missing, "user", "hi"),
        lambda: store.switch_branch(missing),
        lambda: store.update_message(missing, content="x"),
        lambda: store.branch_chat(missing),
        lambda: store.move_chat(chat.id, missing),
        lambda: store.rename_folder(missing, "x"),
    ):
        with pytest.raises(NotFound, match=missing):
            call()
    for bad in ("", "   \n"):
        with pytest.raises(InvalidParams):
            store.append_message(chat.id, None, "user", bad)
    with pytest.raises(InvalidParams):
        store.append_message(chat.id, None, "robot", "hi")
    with pytest.raises(InvalidParams):
        store.rename_chat(chat.id, " ")
    other = store.create_chat()
    foreign = store.append_message(other.id, None, "user", "elsewhere")
    with pytest.raises(InvalidParams):
        store.append_message(chat.id, foreign.id, "assistant", "x")
    # A user message may carry only an attachment.
    m = store.append_message(chat.id, None, "user", "", attachments=[{"name": "a.png"}])
    assert m.attachments == [{"name": "a.png"}]


def test_threads_share_one_store(store: ChatStore) -> None:
    chat = store.create_chat()
    errors: list[BaseException] = []

    def work(tag: str) -> None:
        try:
            for i in range(50):
                store.append_message(chat.id, ACTIVE_LEAF, "user", f"{tag}{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    messages = store.get_chat(chat.id).messages
    assert len(messages) == 200
    assert all(m.sibling_count == 1 for m in messages)
