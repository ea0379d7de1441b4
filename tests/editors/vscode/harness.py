"""Real VS Code (code-server) with the extension installed from its .vsix, for tests and demos.

Used by ``tests/editors/test_vscode.py`` and by ``make run VSCODE=1``
(``python -m tests.editors.vscode.harness serve``). The toolchain (Node 24, code-server,
playwright-core, Debian's chromium) comes from ``vscode-extension/scripts/setup-e2e.sh``,
installed once into a cache folder outside the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EXTENSION_DIR = REPO / "vscode-extension"
VSIX = EXTENSION_DIR / "dist" / "open-llm-lsp.vsix"
SETUP = EXTENSION_DIR / "scripts" / "setup-e2e.sh"
EXTENSION_ID = "open-llm-lsp.open-llm-lsp"

SAMPLE_FILES = {
    "fib.py": (
        '"""Small numeric helpers."""\n\n\n'
        "def fibonacci(n: int) -> int:\n"
        '    """Return the n-th Fibonacci number."""\n'
        "    a, b = 0, 1\n"
        "    for _ in range(n):\n"
        "        a, b = b, a + b\n"
        "    return a\n\n\n"
    ),
    "README.md": "# Demo project\n\nTry the Open LLM chat panel and inline completions here.\n",
}


@dataclass
class Toolchain:
    node: str
    code_server: str
    playwright: str
    chromium: str


def setup_toolchain() -> Toolchain:
    """Install (or find, in seconds) the e2e toolchain; return where it is."""
    result = subprocess.run(
        ["bash", str(SETUP)], check=True, stdout=subprocess.PIPE, text=True, timeout=1800
    )
    cache = Path(result.stdout.strip().splitlines()[-1])
    env: dict[str, str] = {}
    for line in (cache / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value.strip('"')
    return Toolchain(
        node=env["OPEN_LLM_E2E_NODE"],
        code_server=env["OPEN_LLM_E2E_CODE_SERVER"],
        playwright=env["OPEN_LLM_E2E_PLAYWRIGHT"],
        chromium=env["OPEN_LLM_E2E_CHROMIUM"],
    )


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def build_vsix() -> Path:
    """Build the .vsix unless it is newer than every source file (npm ci when needed)."""
    lock = EXTENSION_DIR / "package-lock.json"
    installed = EXTENSION_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EXTENSION_DIR, check=True)
    sources = [
        EXTENSION_DIR / name
        for name in ("src", "webview", "media", "package.json", "README.md", "scripts/build.mjs")
    ]
    if not VSIX.exists() or VSIX.stat().st_mtime < _newest_mtime(sources):
        subprocess.run(["npm", "run", "--silent", "package"], cwd=EXTENSION_DIR, check=True)
    return VSIX


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_settings_schema_has(path: str) -> bool:
    """True when the server's settings schema has ``path`` (e.g. ``models.acceptedLicenses``)."""
    from lsp_server.config.settings import settings_schema

    schema = settings_schema()
    node: dict[str, object] = schema
    for part in path.split("."):
        props = node.get("properties", {})
        assert isinstance(props, dict)
        if part not in props:
            return False
        child = props[part]
        assert isinstance(child, dict)
        ref = child.get("$ref")
        if isinstance(ref, str):
            defs = schema["$defs"]
            child = defs[ref.split("/")[-1]]
        node = child
    return True


def user_settings(extra: dict[str, object] | None = None) -> dict[str, object]:
    """The test profile: quiet VS Code, small contexts, the bundled models."""
    settings: dict[str, object] = {
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoUpdate": False,
        "extensions.autoCheckUpdates": False,
        "security.workspace.trust.enabled": False,
        "chat.disableAIFeatures": True,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "workbench.welcomePage.walkthroughs.openOnInstall": False,
        "workbench.colorTheme": "Default Dark Modern",
        "editor.inlineSuggest.enabled": True,
        "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
        "editor.suggestOnTriggerCharacters": False,
        "editor.minimap.enabled": False,
        "editor.lightbulb.enabled": "on",
        "files.autoSave": "off",
        "git.enabled": False,
        # The server from the project's virtualenv (the extension would otherwise look for
        # `open-llm-lsp` on PATH, then a Python with `lsp_server`).
        "openLlm.server.command": str(REPO / ".venv" / "bin" / "open-llm-lsp"),
        "openLlm.engine.contextLength": 1024,
        "openLlm.completion.maxTokens": 16,
    }
    if server_settings_schema_has("models.acceptedLicenses"):
        settings["openLlm.models.acceptedLicenses"] = ["gemma"]
    settings.update(extra or {})
    return settings


@dataclass
class CodeServer:
    url: str
    workspace: Path
    run_dir: Path
    process: subprocess.Popen[bytes]

    def extension_logs(self) -> list[Path]:
        return sorted((self.run_dir / "user-data" / "logs").rglob(f"*{EXTENSION_ID}*/*.log"))


@contextlib.contextmanager
def code_server(
    tools: Toolchain,
    run_dir: Path,
    settings: dict[str, object] | None = None,
    port: int | None = None,
    workspace: Path | None = None,
) -> Iterator[CodeServer]:
    """Install the .vsix into a fresh profile under ``run_dir`` and run code-server on it."""
    vsix = build_vsix()
    user_data = run_dir / "user-data"
    extensions = run_dir / "extensions"
    (user_data / "User").mkdir(parents=True, exist_ok=True)
    all_settings = user_settings(settings)
    (user_data / "User" / "settings.json").write_text(json.dumps(all_settings, indent=2))
    # code-server is a "remote" window: machine-scoped settings (openLlm.server.*) are read
    # from the Machine settings only.
    machine = {k: v for k, v in all_settings.items() if k.startswith("openLlm.server.")}
    (user_data / "Machine").mkdir(parents=True, exist_ok=True)
    (user_data / "Machine" / "settings.json").write_text(json.dumps(machine, indent=2))
    if workspace is None:
        workspace = run_dir / "workspace"
        workspace.mkdir(parents=True, exist_ok=True)
        for name, text in SAMPLE_FILES.items():
            if not (workspace / name).exists():
                (workspace / name).write_text(text)
    (run_dir / "config.yaml").write_text("auth: none\ncert: false\n")
    env = dict(os.environ)
    env.update(
        XDG_CONFIG_HOME=str(run_dir / "xdg-config"),
        XDG_DATA_HOME=str(run_dir / "xdg-data"),
        OPEN_LLM_LSP_DATA_DIR=str(run_dir / "open-llm-data"),
        HF_HUB_OFFLINE="1",
        # The extension finds `open-llm-lsp` on PATH (the project's virtualenv).
        PATH=os.pathsep.join(
            [str(REPO / ".venv" / "bin"), str(Path(tools.node).parent), env.get("PATH", "")]
        ),
    )
    common = [
        "--config",
        str(run_dir / "config.yaml"),
        "--user-data-dir",
        str(user_data),
        "--extensions-dir",
        str(extensions),
    ]
    subprocess.run(
        [tools.code_server, *common, "--force", "--install-extension", str(vsix)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    port = port or free_port()
    log = open(run_dir / "code-server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            tools.code_server,
            *common,
            "--bind-addr",
            f"127.0.0.1:{port}",
            "--auth",
            "none",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--disable-getting-started-override",
            "--ignore-last-opened",
            str(workspace),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"code-server exited: see {run_dir / 'code-server.log'}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/healthz", timeout=2),
            ):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("code-server did not answer /healthz in 120 s")
            time.sleep(0.3)
        yield CodeServer(url=url, workspace=workspace, run_dir=run_dir, process=process)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def serve(argv: list[str]) -> int:
    """``make run VSCODE=1``: a browser-based VS Code with the extension, until Ctrl+C."""
    parser = argparse.ArgumentParser(prog="python -m tests.editors.vscode.harness serve")
    parser.add_argument("--port", type=int, default=int(os.environ.get("VSCODE_PORT", "8080")))
    parser.add_argument("--folder", type=Path, default=None, help="workspace folder to open")
    args = parser.parse_args(argv)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background
    tools = setup_toolchain()
    run_dir = Path(tempfile.mkdtemp(prefix="open-llm-vscode-"))
    settings = {"openLlm.engine.contextLength": 4096, "openLlm.completion.maxTokens": 48}
    try:
        with code_server(tools, run_dir, settings, port=args.port, workspace=args.folder) as cs:
            folder = cs.workspace
            print(f"\nVS Code with Open LLM is running: open {cs.url}/?folder={folder}")
            print("(local only, no password; Ctrl+C stops it)\n", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                cs.process.wait()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    print("usage: python -m tests.editors.vscode.harness serve [--port N] [--folder DIR]")
    sys.exit(2)
