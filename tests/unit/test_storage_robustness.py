"""Migrations, corrupt files, unwritable places, full disks and two writing processes."""

from __future__ import annotations

import multiprocessing
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from lsp_server.core.errors import StorageError
from lsp_server.storage import ACTIVE_LEAF, ChatStore
from lsp_server.storage.db import LATEST_VERSION, error_kind, fts5_available
from lsp_server.storage.paths import chat_db_path

# The version 1 schema exactly as first released (frozen copy: do not edit).
V1_SQL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE folders (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE chats (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
    folder_id TEXT REFERENCES folders(id) ON DELETE SET NULL,
    pinned INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, updated INTEGER NOT NULL,
    preset_json TEXT, system_prompt TEXT, model TEXT, active_leaf_id TEXT, deleted_at INTEGER
);
CREATE INDEX chats_folder ON chats(folder_id);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    parent_id TEXT REFERENCES messages(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content TEXT NOT NULL, attachments_json TEXT, created INTEGER NOT NULL,
    prompt_tokens INTEGER, completion_tokens INTEGER, ttft_ms REAL, tokens_per_s REAL,
    stop_reason TEXT, model TEXT, incomplete INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_chat ON messages(chat_id, seq);
CREATE INDEX messages_parent ON messages(parent_id);
PRAGMA user_version = 1;
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPEN_LLM_LSP_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "ws"
    path.mkdir()
    return str(path)


def test_migration_from_v1_keeps_data(workspace: str) -> None:
    path = chat_db_path(workspace)
    conn = sqlite3.connect(path)
    conn.executescript(V1_SQL)
    conn.execute("INSERT INTO folders (id, name, created) VALUES ('f1', 'Old folder', 1000)")
    conn.execute(
        "INSERT INTO chats (id, title, folder_id, pinned, created, updated, preset_json,"
        " active_leaf_id) VALUES ('c1', 'Legacy chat', 'f1', 1, 1000, 2000, '{\"topP\":0.9}', 'm2')"
    )
    conn.execute(
        "INSERT INTO messages (id, chat_id, parent_id, role, content, created)"
        " VALUES ('m1', 'c1', NULL, 'user', 'old question about pelicans', 1000)"
    )
    conn.execute(
        "INSERT INTO messages (id, chat_id, parent_id, role, content, created, prompt_tokens,"
        " completion_tokens, stop_reason) VALUES ('m2', 'c1', 'm1', 'assistant',"
        " 'old answer', 1500, 7, 3, 'stop')"
    )
    conn.commit()
    conn.close()

    with ChatStore(workspace) as store:
        detail = store.get_chat("c1")
        assert detail.chat.title == "Legacy chat" and detail.chat.pinned
        assert detail.chat.folder_id == "f1" and detail.chat.preset == {"topP": 0.9}
        assert [m.content for m in detail.messages] == ["old question about pelicans", "old answer"]
        answer = detail.messages[1]
        assert answer.thinking == "" and answer.stats is not None
        assert answer.stats.prompt_tokens == 7 and answer.stats.truncation is None
        assert [f.name for f in store.list_folders()] == ["Old folder"]
        # New columns work and the old text is searchable.
        new = store.append_message("c1", "m2", "user", "new", thinking="")
        store.update_message(new.id, thinking="ignored for user but stored")
        assert [h.chat_id for h in store.search("pelicans")] == ["c1"]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        columns = {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
        assert {"thinking", "truncation_json"} <= columns
    finally:
        conn.close()


def test_newer_schema_is_refused(workspace: str) -> None:
    path = chat_db_path(workspace)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer version"):
        ChatStore(workspace)


def test_corrupt_file_is_moved_aside(workspace: str) -> None:
    path = chat_db_path(workspace)
    garbage = b"this is definitely not an sqlite database\x00" * 200
    path.write_bytes(garbage)
    with ChatStore(workspace) as store:
        moved = store.recovered_from
        assert moved is not None and moved.exists() and moved.parent == path.parent
        assert re.fullmatch(re.escape(path.name) + r"\.corrupt-\d{8}-\d{6}", moved.name)
        assert moved.read_bytes() == garbage
        chat = store.create_chat("fresh start")
        store.append_message(chat.id, None, "user", "works again")
        assert store.list_chats().total == 1
    with ChatStore(workspace) as store:
        assert store.recovered_from is None
        assert store.list_chats().total == 1


def _damage_pages(workspace: str, first_fraction: float) -> tuple[Path, str]:
    """Fill a chat, then scribble over the pages from ``first_fraction`` of the file on."""
    with ChatStore(workspace) as store:
        chat = store.create_chat("x")
        for i in range(300):
            store.append_message(chat.id, ACTIVE_LEAF, "user", f"message {i} " + "x" * 500)
        path = store.path
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    pages = path.stat().st_size // page_size
    with path.open("r+b") as fh:
        for page in range(max(1, int(pages * first_fraction)), pages):
            fh.seek(page * page_size + 8)
            fh.write(b"\xde\xad\xbe\xef" * 64)
    return path, chat.id


def test_damaged_pages_found_by_integrity_check(workspace: str) -> None:
    _damage_pages(workspace, 0.0)
    with ChatStore(workspace, integrity_check=True) as store:
        assert store.recovered_from is not None
        assert store.list_chats().total == 0


def test_corruption_met_at_run_time_is_recovered_at_next_open(workspace: str) -> None:
    path, chat_id = _damage_pages(workspace, 0.5)
    with ChatStore(workspace) as store:  # the cheap open check does not read these pages
        assert store.recovered_from is None
        with pytest.raises(StorageError, match="damaged") as info:
            store.get_chat(chat_id)
        assert info.value.data["reason"] == "corrupt"
    marker = path.with_name(path.name + ".damaged")
    assert marker.exists()
    with ChatStore(workspace) as store:
        assert store.recovered_from is not None and store.recovered_from.exists()
        assert store.list_chats().total == 0
    assert not marker.exists()


def test_database_path_that_cannot_be_opened(workspace: str, tmp_path: Path) -> None:
    blocker = tmp_path / "is-a-directory.sqlite3"
    blocker.mkdir()
    with pytest.raises(StorageError, match="Cannot open the chat database") as info:
        ChatStore(workspace, path=blocker)
    assert info.value.data["reason"] == "cantopen"
    assert "OPEN_LLM_LSP_DATA_DIR" in info.value.message


def test_data_dir_that_cannot_be_created(
    workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    regular_file = tmp_path / "file"
    regular_file.write_text("not a directory")
    monkeypatch.setenv("OPEN_LLM_LSP_DATA_DIR", str(regular_file / "data"))
    with pytest.raises(StorageError, match="OPEN_LLM_LSP_DATA_DIR"):
        ChatStore(workspace)


def test_read_only_database_gives_storage_error(workspace: str) -> None:
    with ChatStore(workspace) as store:
        store.create_chat("existing")
        path = store.path
    # SQLite's own read-only mode (root ignores chmod, so use mode=ro).
    with ChatStore(workspace, read_only=True) as ro:
        assert ro.list_chats().total == 1
        with pytest.raises(StorageError, match="read-only") as info:
            ro.create_chat("new")
        assert info.value.data["reason"] == "readonly"
        assert str(path) in info.value.message


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores chmod")
def test_read_only_directory_gives_storage_error(workspace: str, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StorageError):
            ChatStore(workspace, path=locked / "chats.sqlite3")
    finally:
        locked.chmod(0o700)


def test_full_disk_gives_storage_error(workspace: str) -> None:
    with ChatStore(workspace) as store:
        chat = store.create_chat("big")
        pages = store._db.conn.execute("PRAGMA page_count").fetchone()[0]
        # Cap the file where it is: the next growth fails exactly like a full disk (SQLITE_FULL).
        store._db.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(StorageError, match="full") as info:
            for _ in range(50):
                store.append_message(chat.id, ACTIVE_LEAF, "user", "y" * 20_000)
        assert info.value.data["reason"] == "full"
        assert "free some space" in info.value.message
        store.list_chats()  # the store is still usable for reads after the failure


def test_error_classification() -> None:
    assert error_kind(sqlite3.OperationalError("database is locked")) == "busy"
    assert error_kind(sqlite3.OperationalError("database or disk is full")) == "full"
    assert error_kind(sqlite3.OperationalError("attempt to write a readonly database")) == (
        "readonly"
    )
    assert error_kind(sqlite3.OperationalError("unable to open database file")) == "cantopen"
    assert error_kind(sqlite3.DatabaseError("file is not a database")) == "corrupt"


def _append_worker(
    data_dir: str, workspace: str, chat_id: str, tag: str, count: int, start: Any, results: Any
) -> None:
    os.environ["OPEN_LLM_LSP_DATA_DIR"] = data_dir
    try:
        with ChatStore(workspace) as store:
            start.wait(30)
            for i in range(count):
                role = "user" if i % 2 == 0 else "assistant"
                store.append_message(chat_id, ACTIVE_LEAF, role, f"{tag}-{i}")
        results.put((tag, "ok"))
    except BaseException as exc:  # report everything to the parent
        results.put((tag, f"{type(exc).__name__}: {exc}"))


def test_two_processes_append_to_same_chat(workspace: str, tmp_path: Path) -> None:
    with ChatStore(workspace) as store:
        chat = store.create_chat("shared")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_append_worker,
            args=(str(tmp_path / "data"), workspace, chat.id, tag, 500, start, results),
        )
        for tag in ("A", "B")
    ]
    for p in procs:
        p.start()
    start.set()
    outcome = dict(results.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert outcome == {"A": "ok", "B": "ok"}
    with ChatStore(workspace) as store:
        detail = store.get_chat(chat.id)
        assert detail.chat.message_count == 1000
        messages = detail.messages
        assert len(messages) == 1000  # one unbroken chain: every append saw the latest leaf
        assert all(m.sibling_count == 1 for m in messages)
        for tag in ("A", "B"):
            mine = [int(m.content.split("-")[1]) for m in messages if m.content[0] == tag]
            assert mine == list(range(500))


@pytest.mark.skipif(not fts5_available(), reason="this SQLite has no FTS5")
def test_fts_index_integrity(workspace: str) -> None:
    with ChatStore(workspace) as store:
        chat = store.create_chat("x")
        for i in range(20):
            store.append_message(chat.id, ACTIVE_LEAF, "user", f"token{i} lemur")
        conn = store._db.conn
        conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
        assert len(store.search("lemur")) == 1


def test_lock_held_briefly_is_waited_out(workspace: str) -> None:
    with ChatStore(workspace, busy_timeout_s=0.2) as store:
        blocker = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(0.6, lambda: blocker.execute("COMMIT"))
        timer.start()
        try:
            chat = store.create_chat("after the lock")  # busy timeout + bounded retries
        finally:
            timer.join()
            blocker.close()
        assert store.get_chat_info(chat.id).title == "after the lock"


def test_lock_held_forever_gives_storage_error(workspace: str) -> None:
    with ChatStore(workspace, busy_timeout_s=0.05) as store:
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="locked by another process") as info:
                store.create_chat("never")
            assert info.value.data["reason"] == "busy"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.list_chats().total == 0
