"""Chat lists, folders, pinning, trash and the isolation of workspace folders."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lsp_server.core.errors import Conflict, InvalidParams, NotFound
from lsp_server.core.paths import folder_key, normalize_folder_uri
from lsp_server.storage import NO_FOLDER, ChatStore
from lsp_server.storage.paths import chat_db_path


def test_database_location_and_folder_uri(tmp_path: Path, data_dir: Path) -> None:
    workspace = tmp_path / "proj"
    workspace.mkdir()
    with ChatStore(workspace.as_uri() + "/") as s:
        expected = data_dir / "chats" / f"{folder_key(str(workspace))}.sqlite3"
        assert s.path == expected == chat_db_path(str(workspace))
        assert s.folder_uri == normalize_folder_uri(str(workspace))
    conn = sqlite3.connect(expected)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'folder_uri'").fetchone()
        assert row == (workspace.as_uri(),)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_list_sorting_pinning_paging(store: ChatStore) -> None:
    ids = []
    for title in ("banana", "Apple", "cherry", "date", "elder"):
        chat = store.create_chat(title)
        store.append_message(chat.id, None, "user", f"about {title}")
        ids.append(chat.id)
    # Touch "banana" last so it is the most recently updated.
    store.append_message(ids[0], None, "user", "again")
    page = store.list_chats()
    assert page.total == 5 and page.items[0].title == "banana"
    assert [c.title for c in page.items] == ["banana", "elder", "date", "cherry", "Apple"]
    assert [c.title for c in store.list_chats(sort="title").items] == [
        "Apple",
        "banana",
        "cherry",
        "date",
        "elder",
    ]
    assert store.list_chats(sort="created").items[0].title == "elder"
    assert store.list_chats(sort="created", descending=False).items[0].title == "banana"
    store.set_pinned(ids[3], True)  # date
    assert [c.title for c in store.list_chats(sort="title").items][:2] == ["date", "Apple"]
    second = store.list_chats(sort="title", offset=2, limit=2)
    assert second.total == 5 and [c.title for c in second.items] == ["banana", "cherry"]
    store.set_pinned(ids[3], False)
    assert store.list_chats(sort="title").items[0].title == "Apple"
    assert store.list_chats().items[0].message_count == 2
    with pytest.raises(InvalidParams):
        store.list_chats(sort="size")  # type: ignore[arg-type]


def test_folders_rename_delete_keep_chats(store: ChatStore) -> None:
    work = store.create_folder("Work")
    with pytest.raises(Conflict):
        store.create_folder("work")
    a = store.create_chat("a", folder_id=work.id)
    b = store.create_chat("b")
    store.move_chat(b.id, work.id)
    c = store.create_chat("c")
    assert {x.id for x in store.list_chats(folder_id=work.id).items} == {a.id, b.id}
    assert [x.id for x in store.list_chats(folder_id=NO_FOLDER).items] == [c.id]
    renamed = store.rename_folder(work.id, "Job")
    assert renamed.name == "Job" and renamed.chat_count == 2
    assert [f.name for f in store.list_folders()] == ["Job"]
    assert store.get_chat_info(a.id).folder_id == work.id
    store.move_chat(b.id, None)
    assert store.get_chat_info(b.id).folder_id is None
    assert store.delete_folder(work.id) == 1
    assert store.list_folders() == []
    assert store.get_chat_info(a.id).folder_id is None
    assert store.list_chats().total == 3
    with pytest.raises(NotFound):
        store.list_chats(folder_id=work.id)


def test_clear_all_restore_and_empty_trash(store: ChatStore) -> None:
    chats = [store.create_chat(f"c{i}") for i in range(3)]
    for chat in chats:
        store.append_message(chat.id, None, "user", f"hello platypus {chat.title}")
    assert store.clear_all() == 3
    assert store.list_chats().total == 0
    trash = store.list_trash()
    assert trash.total == 3 and all(c.deleted_at is not None for c in trash.items)
    assert store.search("platypus") == []
    assert store.restore_all() == 3
    assert {c.id for c in store.list_chats().items} == {c.id for c in chats}
    assert len(store.search("platypus")) == 3
    # Delete one to the trash, restore it, delete again and empty the trash.
    store.delete_chat(chats[0].id)
    assert store.list_chats().total == 2
    assert store.restore_chat(chats[0].id).deleted_at is None
    store.delete_chat(chats[0].id)
    assert store.get_chat(chats[0].id).chat.deleted_at is not None  # still readable in trash
    assert store.empty_trash() == 1
    with pytest.raises(NotFound, match=chats[0].id):
        store.get_chat(chats[0].id)
    assert store.list_trash().total == 0
    assert {h.chat_id for h in store.search("platypus")} == {chats[1].id, chats[2].id}
    conn = sqlite3.connect(store.path)
    try:
        count = conn.execute(
            "SELECT count(*) FROM messages WHERE chat_id = ?", (chats[0].id,)
        ).fetchone()[0]
        assert count == 0
        if store.fts_enabled:  # the FTS rows went with the messages
            hits = conn.execute(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'platypus'"
            ).fetchone()[0]
            assert hits == 2
    finally:
        conn.close()


def test_workspace_folders_are_isolated(tmp_path: Path, data_dir: Path) -> None:
    ws1, ws2 = tmp_path / "one", tmp_path / "two"
    ws1.mkdir()
    ws2.mkdir()
    with ChatStore(str(ws1)) as s1, ChatStore(ws2.as_uri()) as s2:
        assert s1.path != s2.path and s1.path.exists() and s2.path.exists()
        c1 = s1.create_chat("first")
        s1.append_message(c1.id, None, "user", "alpha walrus")
        c2 = s2.create_chat("second")
        s2.append_message(c2.id, None, "user", "beta walrus")
        assert [c.id for c in s1.list_chats().items] == [c1.id]
        assert [c.id for c in s2.list_chats().items] == [c2.id]
        assert [h.chat_id for h in s1.search("walrus")] == [c1.id]
        assert [h.workspace_folder for h in s2.search("walrus")] == [ws2.as_uri()]
        assert s1.list_chats().items[0].workspace_folder == ws1.as_uri()
        assert s1.create_folder("Work").workspace_folder == ws1.as_uri()
        assert [f.workspace_folder for f in s1.list_folders()] == [ws1.as_uri()]
        assert s2.list_folders() == []
        with pytest.raises(NotFound):
            s2.get_chat(c1.id)
    # One folder's database cannot be opened as another folder's.
    with pytest.raises(Conflict):
        ChatStore(str(ws2), path=chat_db_path(str(ws1)))
