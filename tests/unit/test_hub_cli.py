"""``open-llm-lsp models list|fit|download|recommend`` against the fake Hub."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lsp_server.cli import main
from lsp_server.cli.models import ProgressBar
from lsp_server.hub.download import DownloadProgress
from tests.hub_server import FakeHub, hub, tiny_gguf

__all__ = ["hub"]

SMOL = "test/SmolLM2-135M-Instruct-GGUF"


@pytest.fixture
def repos(hub: FakeHub, tmp_path: Path, smollm2_path: Path) -> FakeHub:
    hub.add_repo(SMOL, {"SmolLM2-135M-Instruct-Q4_1.gguf": smollm2_path})
    hub.add_repo(
        "google/tiny-gemma-GGUF",
        {"tiny-gemma-Q4_0.gguf": tiny_gguf(tmp_path / "g.gguf", license="gemma", megabytes=0.5)},
        license="gemma",
    )
    return hub


def test_fit_prints_a_table_from_one_header(
    repos: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "fit", SMOL, "--context", "4096"]) == 0
    out = capsys.readouterr().out
    assert "File" in out and "Runs on" in out and "SmolLM2-135M-Instruct-Q4_1.gguf" in out
    assert "*  SmolLM2-135M-Instruct-Q4_1.gguf" in out  # the choice is marked
    assert "License: Apache License 2.0" in out
    assert f"open-llm-lsp models download {SMOL}:Q4_1" in out
    assert repos.served(SMOL, "SmolLM2-135M-Instruct-Q4_1.gguf") < 10_000_000


def test_download_list_and_offline(
    repos: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "download", f"{SMOL}:Q4_1"]) == 0
    captured = capsys.readouterr()
    assert "Downloaded and verified" in captured.out and f"{SMOL}:" in captured.out
    assert "100%" in captured.err  # the progress lines (stderr is not a terminal here)
    assert main(["models", "download", f"{SMOL}:Q4_1"]) == 0
    assert "Already downloaded" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "huggingface" in out and f"{SMOL}:SmolLM2-135M-Instruct-Q4_1.gguf" in out
    repos.stop()
    assert main(["models", "fit", SMOL]) == 1
    err = capsys.readouterr().err
    assert "Cannot reach the Hugging Face Hub" in err and SMOL in err


def test_download_asks_for_a_restricted_license(
    repos: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "download", "google/tiny-gemma-GGUF:Q4_0"]) == 3
    err = capsys.readouterr().err
    assert "Gemma Terms of Use" in err and "--accept-license" in err
    assert repos.served("google/tiny-gemma-GGUF", "tiny-gemma-Q4_0.gguf") == 0
    assert main(["models", "download", "google/tiny-gemma-GGUF:Q4_0", "--accept-license"]) == 0
    licenses = (tmp_path / "data" / "state" / "licenses.json").read_text()
    assert '"gemma"' in licenses and '"cli"' in licenses
    assert main(["models", "list"]) == 0
    assert "gemma (accepted)" in capsys.readouterr().out


def test_recommend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "recommend"]) == 0
    out = capsys.readouterr().out
    assert "Completion:" in out and "openLlm.completion.model:" in out


def test_progress_bar_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = ProgressBar(stream)
    bar(DownloadProgress("model-Q4_K_M.gguf", 512 << 20, 1 << 30, 50 << 20, 1, 2))
    bar(DownloadProgress("model-Q4_K_M.gguf", 1 << 30, 1 << 30, 50 << 20, 1, 2, stage="done"))
    bar.close()
    text = stream.getvalue()
    assert "\r" in text and " 50%" in text and "100%" in text and "MiB/s" in text
    assert "ETA 0:10" in text and text.endswith("\n")
