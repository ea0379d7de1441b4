"""Fixtures of the storage and chat unit tests: a data directory and a real chat store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_server.storage import ChatStore


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory of this test's own (``OPEN_LLM_LSP_DATA_DIR``)."""
    path = tmp_path / "data"
    monkeypatch.setenv("OPEN_LLM_LSP_DATA_DIR", str(path))
    return path


@pytest.fixture
def store(tmp_path: Path, data_dir: Path) -> Iterator[ChatStore]:
    """The chat store of a fresh workspace folder ``tmp_path / "ws"``."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with ChatStore(str(workspace)) as s:
        yield s
