"""Only lsp_server/protocol (the server) and lsp_server/demo (a client) import pygls."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lsp_server"
FORBIDDEN = ("pygls", "lsprotocol")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_only_protocol_imports_pygls() -> None:
    offenders = []
    checked = 0
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("protocol", "demo"):
            continue
        checked += 1
        bad = _imports(path) & set(FORBIDDEN)
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert checked > 5
    assert offenders == []


def test_the_scan_detects_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from pygls.lsp.server import LanguageServer\nimport lsprotocol.types\n")
    assert _imports(sample) >= {"pygls", "lsprotocol"}
