"""Shared output for benchmarks: an aligned table on stdout and a JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print ``rows`` under ``header`` as an aligned text table."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(title)
    for n, row in enumerate(cells):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` (results, ratios, targets) to ``path`` if given."""
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {target}")
