"""The README settings table and protocol reference match the code."""

from __future__ import annotations

from pathlib import Path

from lsp_server.cli import docs
from lsp_server.config.settings import flat_settings

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_is_fresh() -> None:
    current = docs.README.read_text(encoding="utf-8")
    assert docs.render(current) == current, (
        "README settings table is stale: run `python -m lsp_server.cli.docs`"
    )
    for key, *_ in flat_settings():
        assert f"`{key}`" in current


def test_every_custom_method_is_documented() -> None:
    from lsp_server.protocol import methods

    reference = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    names = [v for k, v in vars(methods).items() if k.isupper() and k != "PREFIX"]
    assert len(names) >= 5
    missing = [name for name in names if f"`{name}`" not in reference]
    assert missing == []


def test_every_error_code_is_documented() -> None:
    from lsp_server.protocol.errors import CODES

    reference = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for kind, code in CODES.items():
        assert f"`{kind}`" in reference and str(code) in reference, kind
