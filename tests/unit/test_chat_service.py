"""lsp_server.chat: the store registry across folders, sampling, and an answer run,
on real SQLite stores (the engine side is covered over LSP with the real model)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_server.chat.answer import AnswerRun
from lsp_server.chat.records import AnswerOptions, ChatChange, ChatDelta, Sampling
from lsp_server.chat.service import ChatService
from lsp_server.chat.stores import NO_WORKSPACE, ChatStores
from lsp_server.config.settings import Settings
from lsp_server.core.errors import InvalidParams, NotFound, StorageError
from lsp_server.engine.base import GenerationResult, GenerationStats
from lsp_server.presets import PresetManager
from lsp_server.storage import ChatStore, Message


@pytest.fixture
def folders(tmp_path: Path, data_dir: Path) -> list[Path]:
    out = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        out.append(folder)
    return out


@pytest.fixture
def registry(folders: list[Path]) -> Iterator[ChatStores]:
    stores = ChatStores(lambda: [f.as_uri() for f in folders])
    yield stores
    stores.close()


def test_registry_keeps_folders_apart_and_merges_lists(
    registry: ChatStores, folders: list[Path]
) -> None:
    one, two = (f.as_uri() for f in folders)
    assert registry.folders() == [one, two]
    s1, s2 = registry.store(one), registry.store(two)
    assert registry.store(None) is s1 and s1.path != s2.path
    c1 = s1.create_chat("apple walrus")
    s1.append_message(c1.id, None, "user", "alpha walrus")
    c2 = s2.create_chat("banana")
    m2 = s2.append_message(c2.id, None, "user", "beta walrus")
    c3 = s2.create_chat("cherry")
    s2.set_pinned(c3.id, True)
    merged = registry.list_chats(sort="title")
    assert merged.total == 3
    assert [c.id for c in merged.items] == [c3.id, c1.id, c2.id]  # pinned first, then title
    owners = {c.id: c.workspace_folder for c in merged.items}
    assert owners == {c1.id: one, c2.id: two, c3.id: two}
    page = registry.list_chats(sort="title", offset=1, limit=1)
    assert [c.id for c in page.items] == [c1.id] and page.total == 3
    assert [c.id for c in registry.list_chats(folder_uri=one).items] == [c1.id]
    hits = registry.search("walrus")
    assert {(h.chat_id, h.workspace_folder) for h in hits} == {(c1.id, one), (c2.id, two)}
    assert registry.search("walrus", folder_uri=two)[0].chat_id == c2.id
    assert registry.store_of_chat(c2.id) is s2
    assert registry.store_of_message(m2.id) is s2
    with pytest.raises(NotFound):
        registry.store_of_chat(c2.id, one)
    with pytest.raises(NotFound):
        registry.store_of_chat("f" * 32)
    work = s2.create_folder("Work")
    assert registry.store_of_folder(work.id) is s2
    assert [(f.name, f.workspace_folder) for f in registry.list_folders()] == [("Work", two)]
    # Trash across folders: most recently deleted first.
    assert registry.clear_all() == 3
    trash = registry.list_chats(trash=True)
    assert trash.total == 3 and trash.items[0].id == c3.id
    assert registry.restore_all(two) == 2 and registry.list_chats().total == 2
    with pytest.raises(NotFound):
        registry.stores("file:///not/open")


def test_registry_without_folders_and_after_a_folder_closes(
    data_dir: Path, folders: list[Path]
) -> None:
    open_folders: list[str] = []
    registry = ChatStores(lambda: open_folders)
    try:
        assert registry.folders() == [NO_WORKSPACE]
        chat = registry.store(None).create_chat("no folder")
        assert chat.workspace_folder == NO_WORKSPACE
        open_folders.append(folders[0].as_uri())
        assert registry.folders() == [folders[0].as_uri()]
        with pytest.raises(NotFound):
            registry.store_of_chat(chat.id)  # that store is not open any more
    finally:
        registry.close()


def test_a_damaged_database_is_reported_once(data_dir: Path, folders: list[Path]) -> None:
    uri = folders[0].as_uri()
    with ChatStore(uri) as store:
        path = store.path
    path.write_bytes(b"not a database" * 100)
    for side in path.parent.glob(path.name + "-*"):
        side.unlink()
    told: list[tuple[str, Path]] = []
    registry = ChatStores(lambda: [uri], on_recovered=lambda u, p: told.append((u, p)))
    try:
        registry.store(None)
        registry.store(None)
        assert len(told) == 1 and told[0][0] == uri and ".corrupt-" in told[0][1].name
    finally:
        registry.close()


def test_import_text_and_export_round_trip(registry: ChatStores) -> None:
    store = registry.store(None)
    chat = store.create_chat("round trip")
    store.append_message(chat.id, None, "user", "hello")
    exported = registry.export(chat.id, "json")
    assert exported.format == "json" and exported.data is not None
    assert registry.export(chat.id, "markdown").text.startswith("# round trip")
    store.delete_chat(chat.id)
    store.empty_trash()
    assert registry.import_chat(None, exported.text).id == chat.id
    with pytest.raises(InvalidParams, match="not valid JSON"):
        registry.import_chat(None, "{nope")
    with pytest.raises(InvalidParams, match="JSON object"):
        registry.import_chat(None, "[1]")


class _Host:
    """A host with real presets and settings; no engine (answers are tested over LSP)."""

    def __init__(self, folders: list[str], seed: int = -1) -> None:
        self.streams: dict[str, Callable[[], None]] = {}
        self._folders = folders
        self._presets = PresetManager()
        self._settings = Settings.model_validate({"seed": seed})
        self.shown: list[tuple[str, str]] = []
        self.deltas: list[ChatDelta] = []
        self.changes: list[ChatChange] = []

    def folder_uris(self) -> list[str]:
        return self._folders

    def folder_for(self, uri: str | None) -> str | None:
        return self._folders[0] if self._folders else None

    def open_document(self, uri: str) -> tuple[str, str] | None:
        return None

    async def chat_engine(self) -> Any:
        raise AssertionError("no engine in unit tests")

    def engine_stats_changed(self) -> None:
        pass

    def presets(self) -> PresetManager:
        return self._presets

    def settings(self) -> Settings:
        return self._settings

    def show_warning(self, message: str) -> None:
        self.shown.append(("warning", message))

    def show_error(self, message: str) -> None:
        self.shown.append(("error", message))

    def send_delta(self, delta: ChatDelta) -> None:
        self.deltas.append(delta)

    def chat_changed(self, change: ChatChange) -> None:
        self.changes.append(change)


def test_sampling_is_the_presets_with_overrides_and_the_default_seed(
    folders: list[Path],
) -> None:
    host = _Host([folders[0].as_uri()], seed=42)
    svc = ChatService(host)
    try:
        entry = svc.preset_for(folders[0].as_uri(), None)
        base = Sampling.of(entry.preset.sampling)
        sampling = svc.sampling_for(entry.preset, {"temperature": 0.0, "max_tokens": 7})
        assert sampling.temperature == 0.0 and sampling.max_tokens == 7
        assert sampling.top_k == base.top_k == entry.preset.sampling.top_k
        assert sampling.seed == 42
        assert svc.sampling_for(entry.preset, {"seed": 3}).seed == 3
        params = sampling.engine_params()
        assert params.temperature == 0.0 and params.top_p == base.top_p and params.seed == 42
        assert svc.sampling_for(entry.preset, None).seed == 42
        with pytest.raises(NotFound):
            svc.preset_for(folders[0].as_uri(), "no-such-preset")
    finally:
        svc.close()


def test_start_checks_the_action_and_content_before_creating_a_chat(
    folders: list[Path],
) -> None:
    host = _Host([folders[0].as_uri()])
    svc = ChatService(host)
    try:
        with pytest.raises(InvalidParams, match="Unknown action"):
            asyncio.run(svc.start("", [], AnswerOptions(), action="nope"))
        with pytest.raises(InvalidParams, match="empty"):
            asyncio.run(svc.start("  ", [], AnswerOptions()))
        assert svc.stores.list_chats().total == 0 and host.changes == []
        assert svc.cancel("nothing running") is False
    finally:
        svc.close()


class _FullDisk(ChatStore):
    """A real store whose message updates fail as on a full disk."""

    def update_message(self, message_id: str, **fields: Any) -> None:
        raise StorageError("The disk holding the chat database is full.", data={"reason": "full"})


def test_an_answer_run_streams_saves_and_settles(data_dir: Path, folders: list[Path]) -> None:
    deltas: list[ChatDelta] = []
    failures: list[StorageError] = []

    async def scenario(store: ChatStore) -> tuple[AnswerRun, Message]:
        chat = store.create_chat("run")
        user = store.append_message(chat.id, None, "user", "Count.")
        run = AnswerRun(
            chat.id, "req-1", emit=deltas.append, storage_failed=lambda s, e: failures.append(e)
        )
        run.start(
            store=store,
            chat=chat,
            user=user,
            save_user=None,
            history=[],
            content=user.content,
            attachments=[],
            new_title="Count",
            preset_snapshot={"id": "p"},
            model="m",
            truncation=None,
            prompt="<prompt>",
        )
        assert run.message is not None
        stored = store.get_message(run.message.id)
        assert stored.incomplete and stored.content == "" and stored.stats is not None
        for piece in ("<think>hm</think>", "1, ", "2"):
            run.on_delta(piece)
        await asyncio.sleep(0.6)  # the flush writes the partial answer
        partial = store.get_message(run.message.id)
        stats = GenerationStats(prompt_tokens=9, generated_tokens=3, tokens_per_s=12.345)
        stats.stop_reason = "eos"
        run.finish(GenerationResult("<think>hm</think>1, 2, 3", stats))
        return run, partial

    uri = folders[0].as_uri()
    with ChatStore(uri) as store:
        run, partial = asyncio.run(scenario(store))
        assert partial.content == "1, 2" and partial.thinking == "hm" and partial.incomplete
        assert run.message is not None
        final = store.get_message(run.message.id)
        assert final.content == "1, 2, 3" and final.thinking == "hm" and not final.incomplete
        assert final.stats is not None and final.stats.tokens_per_s == 12.35
        assert final.stats.completion_tokens == 3 and final.stats.model == "m"
        chat = store.get_chat_info(final.chat_id)
        assert chat.title == "Count" and chat.preset == {"id": "p"} and chat.model == "m"
    pieces = [d for d in deltas if not d.done]
    assert "".join(d.delta for d in pieces) == "1, 2, 3" and pieces[0].thinking == "hm"
    done = [d for d in deltas if d.done]
    assert done[0].incomplete is False and done[0].stats is not None
    assert done[0].stats.generation.generated_tokens == 3 and run.saved and failures == []

    deltas.clear()
    with _FullDisk(uri) as store:
        run, _ = asyncio.run(scenario(store))
        assert not run.saved and run.storage_error is failures[0]
        assert len(failures) == 1  # the run stops writing after the first failure
    assert "".join(d.delta for d in deltas if not d.done) == "1, 2, 3"
