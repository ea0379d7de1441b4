"""The layer matrix: which package of lsp_server may import which (docs/ARCHITECTURE.md).

Checked on every test run from the source text (module-level and function-level imports
alike), so a shortcut across layers fails here before it spreads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lsp_server"
EXTERNAL_PROTOCOL = {"pygls", "lsprotocol"}

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "models": {"core"},
    "hardware": {"core", "models"},
    "engine": {"core", "models", "hardware"},
    "completion": {"core", "engine"},
    "storage": {"core"},
    "presets": {"core", "models", "hardware", "config"},
    "config": {"core", "engine"},
    "hub": {"core", "models", "hardware", "config"},
    "chat": {"core", "engine", "storage", "presets", "config"},
    "edits": {"core", "engine", "completion", "presets", "config"},
    "api": {"core", "engine", "completion", "presets", "config", "models", "hardware"},
}
"""Domain packages and what they may import. protocol/, cli/ and demo/ sit on top and may
import any of them; no domain package imports protocol/, cli/ or demo/."""
TOP = {"protocol", "cli", "demo"}
MAY_IMPORT_PYGLS = {"protocol", "demo"}  # the server's LSP layer, and the demo client


def _imports(path: Path) -> set[str]:
    """Top-level names imported by ``path``: ``lsp_server.X`` as ``lsp_server.X``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "lsp_server":
                names = [f"lsp_server.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            found.add(".".join(parts[:2]) if parts[0] == "lsp_server" else parts[0])
    return found


def _package_of(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else None


def _violations() -> tuple[list[str], int]:
    bad: list[str] = []
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        package = _package_of(path)
        if package is None:
            continue  # __init__/__main__ of lsp_server itself
        checked += 1
        rel = path.relative_to(PACKAGE)
        imported = _imports(path)
        if package not in MAY_IMPORT_PYGLS and imported & EXTERNAL_PROTOCOL:
            bad.append(f"{rel}: imports {sorted(imported & EXTERNAL_PROTOCOL)}")
        if package in TOP:
            continue
        allowed = ALLOWED.get(package)
        if allowed is None:
            bad.append(f"{rel}: package {package!r} is missing from the layer matrix")
            continue
        for name in sorted(imported):
            if not name.startswith("lsp_server."):
                continue
            target = name.split(".", 1)[1]
            if target in (package, "__version__") or target in allowed:
                continue
            bad.append(f"{rel}: {package} may not import lsp_server.{target}")
    return bad, checked


def test_layer_matrix_holds() -> None:
    bad, checked = _violations()
    assert checked > 50
    assert bad == []


def test_every_package_is_in_the_matrix() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - TOP <= set(ALLOWED), sorted(packages - TOP - set(ALLOWED))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from pygls.lsp.server import LanguageServer\nimport lsprotocol.types\n", {"pygls"}),
        ("def f():\n    from lsp_server.protocol import methods\n", {"lsp_server.protocol"}),
        ("from lsp_server import __version__\n", {"lsp_server.__version__"}),
    ],
)
def test_the_scan_sees_imports(tmp_path: Path, source: str, expected: set[str]) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(source)
    assert expected <= _imports(sample)
