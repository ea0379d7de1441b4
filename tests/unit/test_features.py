"""setup.FEATURES registers every feature module, and feature modules import no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

from lsp_server.protocol import setup

FEATURES_DIR = Path(__file__).resolve().parents[2] / "lsp_server" / "protocol" / "features"
PREFIX = "lsp_server.protocol.features."


def _feature_imports(path: Path) -> set[str]:
    """Feature modules that ``path`` imports (by module name, at any depth of the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(PREFIX):
                found.add(node.module.removeprefix(PREFIX).split(".")[0])
            elif node.module == PREFIX.rstrip("."):
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix(PREFIX).split(".")[0]
                for a in node.names
                if a.name.startswith(PREFIX)
            )
    return found


def _modules_with_register() -> set[str]:
    out = set()
    for path in FEATURES_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body):
            out.add(path.stem)
    return out


def test_features_lists_every_feature_module_once() -> None:
    listed = [module.__name__.removeprefix(PREFIX) for module in setup.FEATURES]
    assert len(listed) == len(set(listed))
    assert set(listed) == _modules_with_register()
    assert {"chat", "code_actions"} <= set(listed)


def test_feature_modules_do_not_import_each_other_both_ways() -> None:
    imports = {path.stem: _feature_imports(path) for path in FEATURES_DIR.glob("*.py")}
    assert len(imports) > 5
    cycles = sorted(
        (a, b) for a, targets in imports.items() for b in targets if a in imports.get(b, set())
    )
    assert cycles == []
    assert "chat" not in imports["code_actions"] and "code_actions" not in imports["chat"]


def test_the_scan_sees_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        "from lsp_server.protocol.features import chat\n"
        "def f():\n    from lsp_server.protocol.features.code_actions import register\n"
    )
    assert _feature_imports(sample) == {"chat", "code_actions"}
