"""llama.cpp's own tools (``llama-server``, ``llama-bench``) as peers for the benchmarks.

They are built once, outside the repository, from the llama.cpp tree vendored in the pinned
llama-cpp-python sdist, so the peers run exactly the library the language server runs::

    python -m bench.peers.build

Benchmarks call :func:`find` and skip the peer's column with :func:`missing_message` when it
is not built (CI does not build it).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The llama-cpp-python release whose vendored llama.cpp the peers are built from (the pin
#: in pyproject.toml).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
#: The tools :mod:`bench.peers.build` builds.
TOOLS = ("llama-server", "llama-bench")
#: Environment variable that moves the cache (default ``~/.cache/open-llm-lsp/peers``).
ENV_DIR = "OPEN_LLM_LSP_PEERS_DIR"


def peers_root() -> Path:
    """Return the cache folder that holds one build per llama-cpp-python version."""
    configured = os.environ.get(ENV_DIR)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "open-llm-lsp" / "peers"


def bin_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Return the folder the built tools of ``version`` are installed in."""
    return peers_root() / version / "bin"


def find(name: str) -> Path | None:
    """Return the path of the built peer ``name`` (e.g. ``"llama-bench"``), or None if absent."""
    if name not in TOOLS:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(TOOLS)}")
    path = bin_dir() / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def missing_message(name: str) -> str:
    """Return the line a benchmark prints when it skips the peer ``name``."""
    return (
        f"{name} is not built (looked in {bin_dir()}): skipping its column. "
        "Build it once with `python -m bench.peers.build` (~12 min on 2 cores)."
    )
