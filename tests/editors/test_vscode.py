"""The VS Code extension in a real VS Code (code-server 4.139.1 = VS Code 1.139.1).

The extension is built and installed from its .vsix into a fresh profile; code-server starts
the real language server (``open-llm-lsp`` from the project's virtualenv) with the bundled
models; Chromium (playwright-core) types, clicks and reads the DOM. One scenario
(``vscode/e2e.cjs``) runs every step in order and writes its results; each test below asserts
on one step. Screenshots land in ``tests/editors/artifacts/vscode/`` (git-ignored).

The toolchain is installed once by ``vscode-extension/scripts/setup-e2e.sh`` (idempotent,
cached in ``~/.cache/open-llm-lsp-e2e``). Set ``OPEN_LLM_SKIP_VSCODE_E2E=1`` to skip the
end-to-end part (the checks that need no browser still run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lsp_server.protocol import methods
from tests.editors.vscode import harness

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "vscode"
E2E_TIMEOUT_S = 900


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    return node


def test_configuration_matches_server_settings() -> None:
    """package.json's contributes.configuration is generated from the settings schema."""
    result = subprocess.run(
        [_node(), "scripts/gen-config.mjs", "--check"],
        cwd=harness.EXTENSION_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_constants_mirror_server_methods() -> None:
    """Every custom method name of methods.py is spelled the same in constants.ts."""
    constants = (harness.EXTENSION_DIR / "src" / "constants.ts").read_text()
    names = {
        value
        for key, value in vars(methods).items()
        if key.isupper()
        and key != "PREFIX"
        and isinstance(value, str)
        and value.startswith(methods.PREFIX)
    }
    quoted = set(re.findall(r'"(openLlm/[^"]+)"', constants))
    assert sorted(names - quoted) == []
    assert methods.CHAT_START_COMMAND in constants


def test_trust_sensitive_settings_are_user_only() -> None:
    pkg = json.loads((harness.EXTENSION_DIR / "package.json").read_text())
    props: dict[str, Any] = {}
    for section in pkg["contributes"]["configuration"]:
        props.update(section["properties"])
    for key, prop in props.items():
        if key.startswith("openLlm.presets."):
            assert prop.get("scope") == "application", key
    assert props["openLlm.server.command"]["scope"] == "machine"
    assert props["openLlm.ui.mode"]["enum"] == ["user", "powerUser", "developer"]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if os.environ.get("OPEN_LLM_SKIP_VSCODE_E2E"):
        pytest.skip("OPEN_LLM_SKIP_VSCODE_E2E is set")
    tools = harness.setup_toolchain()
    run_dir = tmp_path_factory.mktemp("vscode")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*"):
        if old.is_file():
            old.unlink()
    results_path = run_dir / "results.json"
    with harness.code_server(tools, run_dir) as cs:
        env = dict(
            os.environ,
            E2E_URL=cs.url,
            E2E_WORKSPACE=str(cs.workspace),
            E2E_ARTIFACTS=str(ARTIFACTS),
            E2E_RESULTS=str(results_path),
            E2E_PLAYWRIGHT=tools.playwright,
            E2E_CHROMIUM=tools.chromium,
        )
        driver = Path(__file__).resolve().parent / "vscode" / "e2e.cjs"
        proc = subprocess.run(
            [tools.node, str(driver)],
            env=env,
            timeout=E2E_TIMEOUT_S,
            capture_output=True,
            text=True,
        )
        (ARTIFACTS / "driver.log").write_text(proc.stdout + proc.stderr)
        for log in cs.extension_logs():
            shutil.copy(log, ARTIFACTS / f"extension-{log.name}")
        shutil.copy(run_dir / "code-server.log", ARTIFACTS / "code-server.log")
    if not results_path.exists():
        pytest.fail(f"the e2e driver wrote no results:\n{proc.stderr[-4000:]}")
    results: dict[str, Any] = json.loads(results_path.read_text())
    (ARTIFACTS / "results.json").write_text(json.dumps(results, indent=2))
    if results.get("fatal"):
        pytest.fail(f"the e2e driver crashed: {results['fatal']}")
    return results


def _step(e2e: dict[str, Any], name: str) -> dict[str, Any]:
    step = e2e["steps"].get(name)
    assert step is not None, f"step {name} did not run"
    assert step["ok"], f"step {name} failed:\n{step.get('error')}"
    return step


def test_status_bar_shows_the_model(e2e: dict[str, Any]) -> None:
    _step(e2e, "workbench")
    step = _step(e2e, "status_bar_model")
    assert "smollm2" in step["detail"]["text"].lower()


def test_ghost_text_from_the_model_and_tab_inserts_it(e2e: dict[str, Any]) -> None:
    step = _step(e2e, "ghost_text")
    assert step["detail"]["ghostText"].strip()


def test_chat_streams_into_the_panel_with_stats(e2e: dict[str, Any]) -> None:
    step = _step(e2e, "chat_streams")
    assert step["detail"]["partial"], "no partial text was seen while streaming"
    assert "tok/s" in step["detail"]["stats"]
    assert step["detail"]["answer"].strip()


def test_stop_and_html_in_messages_never_runs(e2e: dict[str, Any]) -> None:
    _step(e2e, "stop_and_sanitize")


def test_chat_is_in_the_tree_after_a_window_reload(e2e: dict[str, Any]) -> None:
    step = _step(e2e, "tree_after_reload")
    assert step["detail"]["after"]


def test_search_finds_the_chat(e2e: dict[str, Any]) -> None:
    assert _step(e2e, "search")["detail"]["hits"] >= 1


def test_rename_duplicate_delete_and_restore_from_the_tree(e2e: dict[str, Any]) -> None:
    labels = _step(e2e, "rename_duplicate_delete_restore")["detail"]["labels"]
    assert any("Renamed by e2e (copy)" in label for label in labels)


def test_switching_preset_updates_the_status_bar(e2e: dict[str, Any]) -> None:
    step = _step(e2e, "switch_preset")
    assert "Concise answers" in step["detail"]["text"]


def test_model_picker(e2e: dict[str, Any]) -> None:
    step = _step(e2e, "model_picker")
    if not step["detail"]["hasModelsApi"]:
        pytest.skip("the server has no openLlm/models/list: the picker offers local files")
    assert step["detail"]["fitTable"], step["detail"]["labels"]


def test_code_action_opens_the_chat(e2e: dict[str, Any]) -> None:
    _step(e2e, "code_action")


def test_no_request_left_the_machine(e2e: dict[str, Any]) -> None:
    # Blocked requests are fine (that is the point); this records what VS Code tried.
    assert isinstance(e2e["info"].get("blocked", []), list)
