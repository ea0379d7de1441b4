"""openLlm/models/select's store: the latest explicit choice wins."""

from __future__ import annotations

from pathlib import Path

from lsp_server.config.settings import parse_settings
from lsp_server.hub.selection import SelectionStore


def test_selection_overrides_until_the_setting_changes(tmp_path: Path) -> None:
    store = SelectionStore(tmp_path / "models.json")
    base, _ = parse_settings({"model": "/models/chat.gguf"})
    assert store.apply(base)[0] is base  # nothing selected
    store.set("chat", "/models/picked.gguf", "/models/chat.gguf")
    applied, notes = store.apply(base)
    assert applied.model == "/models/picked.gguf" and notes == []
    # The completion model keeps following the setting, not the selection.
    assert applied.completion.model == "/models/chat.gguf"
    changed, _ = parse_settings({"model": "/models/newer.gguf"})
    applied, notes = store.apply(changed)
    assert applied.model == "/models/newer.gguf" and len(notes) == 1
    assert store.all() == {}  # dropped for good


def test_completion_selection_and_clearing(tmp_path: Path) -> None:
    store = SelectionStore(tmp_path / "models.json")
    base, _ = parse_settings({"model": "/m/chat.gguf", "completion": {"model": "/m/fim.gguf"}})
    store.set("completion", "org/Coder-GGUF:Q8_0", "/m/fim.gguf")
    applied, _ = store.apply(base)
    assert applied.completion.model == "org/Coder-GGUF:Q8_0" and applied.model == "/m/chat.gguf"
    assert store.all()["completion"]["setting"] == "/m/fim.gguf"
    store.set("completion", None, "")
    assert store.apply(base)[0].completion.model == "/m/fim.gguf"


def test_a_damaged_file_selects_nothing(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text('{"selected": {"chat": 5, "bogus": {"model": "x"}}}')
    assert SelectionStore(path).all() == {}
