"""One real SmolLM2 model and context for the whole engine test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def llama_model(smollm2_path: Path) -> Iterator[Any]:
    from lsp_server.engine.llama import LlamaModel

    model = LlamaModel(smollm2_path)
    yield model
    model.close()


@pytest.fixture()
def context(llama_model: Any) -> Iterator[Any]:
    """A fresh 2048-token context with 64-token prompt slices."""
    from lsp_server.engine.llama import LlamaContext

    ctx = LlamaContext(llama_model, n_ctx=2048, n_batch=64, threads=1)
    yield ctx
    ctx.close()
