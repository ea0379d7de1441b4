"""Text a repository controls never reaches the user as a link or markup.

A GGUF's ``general.name`` and ``general.license``, a settings value and a key, a model
path: each can carry ``[label](command:...)``, which VS Code renders in a notification
as a link that runs a command. Every string bound for ``window/showMessage``,
``window/showMessageRequest``, ``window/logMessage``, ``$/progress`` and the status goes
through one sanitizer (``lsp_server.core.sanitize``), and settings values are described,
not echoed. The Neovim statusline escapes ``%``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lsp_server.core.sanitize import (
    clean_status,
    clean_text,
    describe_key,
    describe_value,
    safe_url,
)
from lsp_server.hub.licenses import card_license, license_info
from tests.security.hostile import (
    COMMAND_LINK,
    LINK_MARKUP,
    rewrite_gguf,
    server,
    texts_with_link_markup,
)

# --- the sanitizer ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        COMMAND_LINK,
        "see [the docs](https://x.invalid) and [x](command:workbench.action.terminal.new)",
        "nested [[a](command:b)](command:c)",
        "a\nb\r\nc\u2028d",
        "bidi \u202egnp.exe\u202c and zero\u200bwidth",
    ],
)
def test_clean_text_leaves_no_link_markup_no_line_break(text: str) -> None:
    cleaned = clean_text(text)
    assert not LINK_MARKUP.search(cleaned)
    assert "\n" not in cleaned and "\r" not in cleaned and "\u2028" not in cleaned
    assert "\u202e" not in cleaned and "\u200b" not in cleaned
    # What was readable stays readable: every letter and digit, in order.
    assert [c for c in cleaned if c.isalnum()] == [c for c in text if c.isalnum()]


def test_clean_text_caps_the_length() -> None:
    cleaned = clean_text("x" * 100_000, 200)
    assert len(cleaned) == 200 and cleaned.endswith("…")
    assert clean_text("short", 200) == "short"


def test_values_are_described_not_echoed() -> None:
    assert describe_value(COMMAND_LINK) == f"a string of {len(COMMAND_LINK)} characters"
    assert describe_value([COMMAND_LINK, 1]) == "a list of 2 items"
    assert describe_value({"a": COMMAND_LINK}) == "an object with 1 key"
    assert describe_value(5) == "5" and describe_value(True) == "true"
    assert describe_value(None) == "null"
    assert describe_key("contextLength") == "contextLength"
    assert describe_key(COMMAND_LINK) == f"<a string of {len(COMMAND_LINK)} characters>"


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://ai.google.dev/gemma/terms", True),
        ("http://example.com/license", False),
        ("command:workbench.action.terminal.new", False),
        ("file:///etc/passwd", False),
        ("javascript://x%0aalert(1)", False),
        ("vscode://ms-python.python/run", False),
        ("https://user:pw@example.com/", False),
        ("https://exa mple.com/", False),
        ("https:///nohost", False),
    ],
)
def test_only_https_links(url: str, kept: bool) -> None:
    assert (safe_url(url) == url) is kept


def test_license_links_and_names_from_a_card_are_safe() -> None:
    info = card_license(
        {"license": "other", "license_name": COMMAND_LINK, "license_link": "command:evil"},
        "acme/model-GGUF",
    )
    assert info is not None
    assert not LINK_MARKUP.search(info.name)
    assert info.url == "https://huggingface.co/acme/model-GGUF"  # not the command link
    bad = license_info("mit", link="file:///etc/passwd")
    assert bad is not None and bad.url == "https://opensource.org/license/mit"
    relative = license_info("other", name="x", link="../../x/../LICENSE", repo="a/b")
    assert relative is not None and relative.url == "https://huggingface.co/a/b"


def test_status_text_is_cleaned_and_identifiers_kept() -> None:
    status = {
        "message": COMMAND_LINK,
        "settingsProblems": [COMMAND_LINK],
        "model": {"name": COMMAND_LINK, "path": "/m/[x](y).gguf"},
        "roles": {"chat": {"error": {"kind": "modelNotFound", "message": "a\nb"}}},
    }
    out = clean_status(status)
    assert (
        texts_with_link_markup([out["message"], *out["settingsProblems"], out["model"]["name"]])
        == []
    )
    assert out["roles"]["chat"]["error"]["message"] == "a | b"
    assert out["model"]["path"] == "/m/[x](y).gguf"  # a path is data, not shown text
    assert status["message"] == COMMAND_LINK  # the input is not modified


# --- through the real server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_models(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copies of SmolLM2 whose metadata carries command links: one with an open license
    (it loads), one with a restricted license of that name (the user is asked)."""
    folder = tmp_path_factory.mktemp("hostile-models")
    named = rewrite_gguf(smollm2_path, folder / "named.gguf", {"general.name": COMMAND_LINK})
    licensed = rewrite_gguf(
        smollm2_path,
        folder / "licensed.gguf",
        {"general.name": COMMAND_LINK, "general.license": "[lic](command:evil.license)"},
    )
    return {"named": named, "licensed": licensed}


@pytest.mark.model
async def test_no_text_the_client_receives_carries_a_command_link(
    hostile_models: dict[str, Path], tmp_path: Path
) -> None:
    options: dict[str, Any] = {
        "model": str(hostile_models["named"]),
        "completion": {"model": str(hostile_models["licensed"])},
        "engine": {"contextLength": 1024, "batchSize": 64, "threads": COMMAND_LINK},
        COMMAND_LINK: 1,
    }
    async with server(tmp_path, options, answers=["Decline"]) as s:
        await s.until(
            lambda st: (
                st["roles"]["chat"]["state"] == "ready"
                and st["roles"].get("completion", {}).get("error") is not None
            )
        )
        await s.until(lambda st: any("stays off" in m for m in s.shown), timeout=60)
        status = await s.status()
        assert status["model"]["name"] and "command:" in status["model"]["name"]  # it is there
        assert s.asked, "the license prompt was shown"
        assert any("threads" in p for p in status["settingsProblems"])
        visible = s.visible_texts()
        assert texts_with_link_markup(visible) == []
        # Settings values and keys are described, never echoed.
        problems = " ".join(status["settingsProblems"])
        assert "workbench.action.terminal.new" not in problems
        assert f"a string of {len(COMMAND_LINK)} characters" in problems
        assert all("\n" not in t for t in visible)


@pytest.mark.model
async def test_a_model_path_in_an_error_message_carries_no_link(tmp_path: Path) -> None:
    missing = tmp_path / COMMAND_LINK / "model.gguf"
    options = {"model": str(missing), "completion": {"enabled": False}}
    async with server(tmp_path, options) as s:
        await s.until(lambda st: st["roles"]["chat"]["state"] == "error")
        await s.until(lambda st: bool(s.shown), timeout=60)
        err = await s.error("openLlm/generate", {"prompt": "hi", "maxTokens": 1})
        assert texts_with_link_markup([*s.visible_texts(), err.message]) == []
        assert "model.gguf" in " ".join(s.shown)  # the message still names the file


# --- the Neovim statusline -----------------------------------------------------------------

NVIM_SCRIPT = r"""
local out = {}
local status = require('open_llm.status')
status.by_client[1] = { state = 'ready', model = { name = vim.env.HOSTILE_NAME } }
status.set_preset(1, '%{%v:lua.HOSTILE()%}')
_G.HOSTILE = function() vim.fn.writefile({'ran'}, vim.env.MARKER) return '' end
out.text = status.statusline()
local rendered = vim.api.nvim_eval_statusline(
  '%{%v:lua.require("open_llm.status").statusline()%}', {}
)
out.rendered = rendered.str
vim.fn.writefile({ vim.json.encode(out) }, vim.env.OUT)
vim.cmd('qall!')
"""


def test_nvim_statusline_escapes_percent(tmp_path: Path) -> None:
    from tests.editors.test_nvim import NVIM, REPO

    if NVIM is None:
        pytest.skip("nvim not found: pip install -e '.[dev]'")
    script = tmp_path / "statusline.lua"
    script.write_text(NVIM_SCRIPT)
    marker, out = tmp_path / "ran", tmp_path / "out.json"
    env = dict(
        os.environ,
        HOSTILE_NAME="%{%v:lua.HOSTILE()%}\nx%!",
        MARKER=str(marker),
        OUT=str(out),
    )
    subprocess.run(
        [NVIM, "--headless", "--clean", "--cmd", f"set rtp^={REPO / 'nvim'}", "-S", str(script)],
        env=env,
        timeout=60,
        check=True,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert not marker.exists(), "a statusline item from a model name ran"
    assert "%%{%%v:lua.HOSTILE()%%}" in result["text"] and "\n" not in result["text"]
    assert "%{%v:lua.HOSTILE()%}" in result["rendered"]  # shown as text
