"""Parsers are bounded: a model card's front matter and a models folder scan.

A README beside a GGUF with a long run of spaces on a front-matter line took quadratic
regex time on the engine thread (minutes: completion and chat stalled behind it); a
``models.folders`` scan followed links into ``/proc`` and around loops. Each is a test
here, on its own and through the real server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lsp_server.hub.discovery import discover, local_license
from lsp_server.hub.licenses import README_LIMIT, readme_license
from tests.hub_server import tiny_gguf
from tests.security.hostile import bounded, rewrite_gguf, server

SPACES = 400_000
HOSTILE_README = "---\nlicense: a" + " " * SPACES + "b\n---\n"
"""Quadratic regular-expression time: minutes before the fix."""


# --- license front matter ---------------------------------------------------------------------


def _front(spaces: int) -> str:
    # `^license:\s*(.+?)\s*$` retried the run of spaces for every character of it.
    return "---\nlicense: a" + " " * spaces + "b\nlicense_name: " + " " * spaces + "\n---\n"


def test_front_matter_with_long_runs_of_spaces_is_parsed_in_linear_time() -> None:
    # Within the part of a README that is read: parsed.
    info = bounded(readme_license, _front(30_000), "acme/model")
    assert info is not None and info.id == "a" and info.restricted  # values cut at 512
    # Far longer (a regular expression took minutes): the front matter does not end
    # within the part read, so there is no license, at once.
    assert bounded(readme_license, HOSTILE_README, "acme/model") is None


@pytest.mark.parametrize(
    ("text", "license_id"),
    [
        ("---\nlicense: apache-2.0\n---\n# card\n", "apache-2.0"),
        ("\ufeff---\r\nlicense: 'gemma'\r\ntags:\r\n- x\r\n---\r\n", "gemma"),
        ("---\nlicense:\n  - mit\n---\n", "mit"),
        ("---\ntags:\n  license: mit\n---\n", None),  # not a top-level key
        ("---\nlicense: mit\n", None),  # no end of the front matter
        ("# no front matter\nlicense: mit\n", None),
        ("---\n" + "x: y\n" * 100_000 + "license: mit\n---\n", None),  # beyond the limit
    ],
)
def test_front_matter_is_read_line_by_line(text: str, license_id: str | None) -> None:
    info = readme_license(text)
    assert (info.id if info else None) == license_id
    assert len("---\n" + "x: y\n" * 100_000) > README_LIMIT


def test_a_readme_is_read_only_from_a_regular_file_and_only_its_head(tmp_path: Path) -> None:
    model = tiny_gguf(tmp_path / "m.gguf", license=None, megabytes=0.1)
    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: gemma\n---\n" + "z" * 10_000_000)
    info = bounded(local_license, model)
    assert info is not None and info.key == "gemma"
    readme.unlink()
    if sys.platform != "win32":
        os.mkfifo(readme)  # opening a FIFO for reading would block forever
        assert bounded(local_license, model) is None
        readme.unlink()
        readme.symlink_to("/dev/zero")
        assert bounded(local_license, model) is None


@pytest.mark.model
async def test_a_hostile_readme_beside_the_model_does_not_stall_the_server(
    smollm2_path: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    model = rewrite_gguf(smollm2_path, folder / "m.gguf", {"general.license": ""})
    (folder / "README.md").write_text(HOSTILE_README)
    options = {
        "model": str(model),
        "completion": {"enabled": False},
        "engine": {"contextLength": 1024},
        "models": {"acceptedLicenses": ["x"]},
    }
    async with server(tmp_path, options) as s:
        status = await s.until(lambda st: st["roles"]["chat"]["state"] != "loading", 120)
        assert status["roles"]["chat"]["state"] == "ready", status
        result = await s.request(
            "openLlm/generate", {"prompt": "Hello", "maxTokens": 2, "temperature": 0}
        )
        assert result["stats"]["generatedTokens"] >= 1


# --- models folder scans -----------------------------------------------------------------------


@pytest.fixture
def tangled_folder(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    tiny_gguf(deep / "Real-Q4_0.gguf", megabytes=0.1)
    if sys.platform != "win32":
        (deep / "loop").symlink_to(root)  # a cycle
        (root / "a" / "self").symlink_to(".")
        (root / "proc").symlink_to("/proc")  # the kernel's pseudo files: /proc/self/root
        (root / "environ.gguf").symlink_to("/proc/self/environ")
        (root / "zero.gguf").symlink_to("/dev/zero")
        os.mkfifo(root / "fifo.gguf")
    return root


def test_a_folder_scan_follows_no_link_into_proc_and_never_loops(tangled_folder: Path) -> None:
    found = bounded(
        discover, [tangled_folder], lm_studio=False, bundled=False, cache_dir=Path("/nonexistent")
    )
    names = sorted(m.path.name for m in found.models)
    assert names == ["Real-Q4_0.gguf"], names


@pytest.mark.model
async def test_models_list_over_lsp_answers_for_a_tangled_folder(
    tangled_folder: Path, tmp_path: Path
) -> None:
    options = {"completion": {"enabled": False}, "models": {"lmStudio": False}}
    async with server(tmp_path, options) as s:
        listing = await s.request(
            "openLlm/models/list", {"folders": [str(tangled_folder)], "catalog": False}
        )
        found = [m["file"] for m in listing["models"] if m["source"] == "folder"]
        assert found == ["Real-Q4_0.gguf"], found
