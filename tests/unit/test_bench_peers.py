"""bench.peers: where the built llama.cpp tools are looked up, and the skip message."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import peers


def test_peers_find_reports_missing_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(peers.ENV_DIR, str(tmp_path))
    assert peers.find("llama-bench") is None
    assert "python -m bench.peers.build" in peers.missing_message("llama-bench")
    tool = peers.bin_dir() / "llama-bench"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    assert peers.find("llama-bench") is None  # not executable
    tool.chmod(0o755)
    assert peers.find("llama-bench") == tool
    with pytest.raises(ValueError, match="unknown peer"):
        peers.find("llama-cli")
