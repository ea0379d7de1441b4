"""Small JSON state files under ``data_dir()/state/``, read fresh and written atomically."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lsp_server.core.paths import atomic_write_text, data_dir

__all__ = ["read_json", "state_path", "write_json"]

log = logging.getLogger(__name__)


def state_path(name: str) -> Path:
    """``<data dir>/state/<name>`` (the folder is created on write)."""
    return data_dir() / "state" / name


def read_json(path: Path) -> dict[str, Any]:
    """The object in ``path``; ``{}`` when missing or unreadable (logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s): treating it as empty", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically: a temporary file in the same folder, fsync,
    then ``os.replace``.

    :raises StorageError: the file cannot be written.
    """
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
