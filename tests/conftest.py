"""Shared fixtures: an isolated data directory and the bundled models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every test's chats, presets and state out of the user's real data dir."""
    path = tmp_path_factory.mktemp("data")
    old = os.environ.get("OPEN_LLM_LSP_DATA_DIR")
    os.environ["OPEN_LLM_LSP_DATA_DIR"] = str(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    yield path
    if old is None:
        os.environ.pop("OPEN_LLM_LSP_DATA_DIR", None)
    else:
        os.environ["OPEN_LLM_LSP_DATA_DIR"] = old


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The bundled SmolLM2-135M-Instruct Q4_1 file (chat model)."""
    from lsp_server.models.bundled import bundled_smollm2_path

    return bundled_smollm2_path()
