"""Command line that writes the preset JSON schema to ``presets/schema.json``.

Regenerate the committed file after changing :mod:`lsp_server.presets.models`::

    python -m lsp_server.cli.schema          # write presets/schema.json
    python -m lsp_server.cli.schema --check  # exit 1 when the file is stale
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lsp_server.presets.schema import (
    REGENERATE_COMMAND,
    preset_json_schema,
    schema_path,
    schema_text,
    write_schema,
)

__all__ = ["main", "preset_json_schema", "schema_path", "schema_text", "write_schema"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: write the schema, or check that it is fresh.

    :param argv: arguments (default: ``sys.argv[1:]``).
    :returns: the process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m lsp_server.cli.schema", description="Write presets/schema.json."
    )
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=None,
        help="output file (default: presets/schema.json in the repository)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the file differs from the models",
    )
    args = parser.parse_args(argv)
    target: Path = args.path or schema_path()
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != schema_text():
            print(f"{target} is stale; run `{REGENERATE_COMMAND}`")
            return 1
        print(f"{target} is up to date")
        return 0
    write_schema(target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
