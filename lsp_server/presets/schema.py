"""JSON schema of the preset format (written to ``presets/schema.json`` by the schema CLI)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lsp_server.presets.models import Preset

logger = logging.getLogger(__name__)

REGENERATE_COMMAND = "python -m lsp_server.cli.schema"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def repo_presets_dir() -> Path:
    """Return ``<repo>/presets`` (built-in presets, README and schema in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "presets"


def schema_path() -> Path:
    """Return the path of the committed schema file, ``<repo>/presets/schema.json``."""
    return repo_presets_dir() / "schema.json"


def _strip_property_titles(node: Any) -> None:
    """Drop the auto-generated per-property titles ("Topp"); descriptions say more."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for prop in props.values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
        for value in node.values():
            _strip_property_titles(value)
    elif isinstance(node, list):
        for item in node:
            _strip_property_titles(item)


def preset_json_schema() -> dict[str, Any]:
    """Return the JSON schema (draft 2020-12) of a preset file, keys as written on disk."""
    schema = Preset.model_json_schema(by_alias=True, mode="validation")
    _strip_property_titles(schema)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "Open LLM LSP preset",
        "description": (
            "A preset for Open LLM LSP: system prompt, sampling settings and optional model. "
            "Generated from lsp_server/presets/models.py by "
            f"`{REGENERATE_COMMAND}`; do not edit by hand."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text() -> str:
    """Return the schema as the exact text committed in ``presets/schema.json``."""
    return json.dumps(preset_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path | None = None) -> Path:
    """Write the schema file.

    :param path: destination; defaults to :func:`schema_path`.
    :returns: the path written.
    """
    target = path or schema_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema_text(), encoding="utf-8")
    logger.info("wrote %s", target)
    return target
