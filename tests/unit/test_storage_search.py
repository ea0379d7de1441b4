"""Search over titles and messages, with FTS5 and with the forced LIKE fallback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_server.storage import ACTIVE_LEAF, SNIPPET_CLOSE, SNIPPET_OPEN, ChatStore
from lsp_server.storage.db import fts5_available
from lsp_server.storage.search import highlight, make_snippet

MODES = [
    pytest.param(
        True,
        id="fts5",
        marks=pytest.mark.skipif(not fts5_available(), reason="this SQLite has no FTS5"),
    ),
    pytest.param(False, id="like-fallback"),
]


@pytest.fixture(params=MODES)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ChatStore]:
    monkeypatch.setenv("OPEN_LLM_LSP_DATA_DIR", str(tmp_path / "data"))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with ChatStore(str(workspace), use_fts=request.param) as s:
        assert s.fts_enabled is request.param
        yield s


def test_finds_words_from_assistant_answers(store: ChatStore) -> None:
    chat = store.create_chat("Database question")
    u = store.append_message(chat.id, None, "user", "How should I store sessions?")
    a = store.append_message(
        chat.id,
        u.id,
        "assistant",
        "Keep them in Redis with an expiry. Redis evicts old keys for you.",
    )
    other = store.create_chat("Unrelated")
    store.append_message(other.id, None, "user", "Tell me about gardening.")
    hits = store.search("redis")
    assert [h.chat_id for h in hits] == [chat.id]
    hit = hits[0]
    assert hit.message_id == a.id and hit.role == "assistant"
    assert hit.snippet is not None and f"{SNIPPET_OPEN}Redis{SNIPPET_CLOSE}" in hit.snippet
    assert hit.matched_in == ["message"] and hit.score > 0
    assert hit.workspace_folder == store.folder_uri


def test_all_words_required_and_title_matches(store: ChatStore) -> None:
    c1 = store.create_chat("Rust lifetimes")
    store.append_message(c1.id, None, "user", "borrow checker errors everywhere")
    c2 = store.create_chat("Python typing")
    store.append_message(c2.id, None, "user", "borrow ideas from mypy")
    assert {h.chat_id for h in store.search("borrow")} == {c1.id, c2.id}
    assert [h.chat_id for h in store.search("borrow checker")] == [c1.id]
    assert [h.chat_id for h in store.search("borrow mypy")] == [c2.id]
    title_hits = store.search("lifetimes")
    assert [h.chat_id for h in title_hits] == [c1.id]
    assert title_hits[0].matched_in == ["title"] and title_hits[0].message_id is None
    assert title_hits[0].title_highlight == f"Rust {SNIPPET_OPEN}lifetimes{SNIPPET_CLOSE}"
    assert store.search("nothing-matches-this") == []
    assert store.search("  ?!  ") == []
    # Quotes and FTS syntax in the query are taken literally, not as operators.
    assert store.search('borrow" OR "gardening') == []
    assert [h.chat_id for h in store.search("borrow AND checker")] == []


def test_ranking_prefers_dense_matches(store: ChatStore) -> None:
    filler = " ".join(f"word{i}" for i in range(300))
    sparse = store.create_chat("sparse")
    store.append_message(sparse.id, None, "user", f"{filler} kubernetes {filler}")
    dense = store.create_chat("dense")
    store.append_message(dense.id, None, "user", "kubernetes pods: kubernetes kubernetes")
    hits = store.search("kubernetes")
    assert [h.chat_id for h in hits] == [dense.id, sparse.id]
    assert hits[0].score > hits[1].score
    assert hits[1].snippet is not None and hits[1].snippet.startswith("\u2026")
    assert len(store.search("kubernetes", limit=1)) == 1


def test_trash_and_folder_filters(store: ChatStore) -> None:
    folder = store.create_folder("f")
    inside = store.create_chat("in", folder_id=folder.id)
    store.append_message(inside.id, None, "user", "shared term octopus")
    outside = store.create_chat("out")
    store.append_message(outside.id, None, "user", "octopus again")
    assert [h.chat_id for h in store.search("octopus", folder_id=folder.id)] == [inside.id]
    assert [h.chat_id for h in store.search("octopus", folder_id="")] == [outside.id]
    store.delete_chat(outside.id)
    assert [h.chat_id for h in store.search("octopus")] == [inside.id]
    store.rename_chat(inside.id, "octopus facts")
    assert store.search("octopus")[0].matched_in == ["title", "message"]


def test_fallback_database_gets_fts_index_later(tmp_path: Path) -> None:
    if not fts5_available():
        pytest.skip("this SQLite has no FTS5")
    path = tmp_path / "db.sqlite3"
    workspace = str(tmp_path)
    with ChatStore(workspace, path=path, use_fts=False) as s:
        chat = s.create_chat("narwhal notes")
        s.append_message(chat.id, None, "assistant", "tusks are teeth")
        assert [h.chat_id for h in s.search("tusks")] == [chat.id]
    with ChatStore(workspace, path=path) as s:
        assert s.fts_enabled
        hits = s.search("tusks")
        assert [h.chat_id for h in hits] == [chat.id]
        assert hits[0].snippet == f"{SNIPPET_OPEN}tusks{SNIPPET_CLOSE} are teeth"
        assert [h.chat_id for h in s.search("narwhal")] == [chat.id]


def test_snippet_helpers() -> None:
    assert highlight("Foo bar foo", ["foo"]) == "«Foo» bar «foo»"
    text = "a " * 200 + "needle" + " b" * 200
    snippet = make_snippet(text, ["needle"])
    assert "«needle»" in snippet and snippet.startswith("…") and snippet.endswith("…")
    assert len(snippet) < 160
    assert make_snippet("short needle", ["needle"]) == "short «needle»"


def test_live_match_found_behind_many_trashed_ones(store: ChatStore) -> None:
    live = store.create_chat("live")
    store.append_message(live.id, None, "user", "quokka " + "filler " * 40)
    for i in range(250):
        chat = store.create_chat(f"trashed {i}")
        store.append_message(chat.id, None, "user", "quokka")
    assert store.clear_all() == 251
    store.restore_chat(live.id)
    hits = store.search("quokka")
    assert [h.chat_id for h in hits] == [live.id]


def test_sqlite_without_fts5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DB made with FTS5, then opened where FTS5 is missing, keeps working and catches up."""
    if not fts5_available():
        pytest.skip("this SQLite has no FTS5")
    from lsp_server.storage import db

    path = tmp_path / "db.sqlite3"
    with ChatStore(str(tmp_path), path=path) as s:
        chat = s.create_chat("made with fts")
        s.append_message(chat.id, None, "user", "first ocelot")
    monkeypatch.setattr(db, "_fts5_available", False)
    with ChatStore(str(tmp_path), path=path) as s:
        assert not s.fts_enabled
        triggers = s._db.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
        ).fetchone()[0]
        assert triggers == 0  # they would fail on every write without the module
        s.append_message(chat.id, ACTIVE_LEAF, "assistant", "second ocelot answer")
        s.rename_chat(chat.id, "renamed without fts")
        assert [h.message_id is not None for h in s.search("answer")] == [True]
    monkeypatch.setattr(db, "_fts5_available", True)
    with ChatStore(str(tmp_path), path=path) as s:
        assert s.fts_enabled
        assert [h.chat_id for h in s.search("answer")] == [chat.id]
        assert [h.chat_id for h in s.search("renamed")] == [chat.id]
        assert s.search("made") == []  # the old title left the index
        s._db.conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
