"""Small JSON state files under ``data_dir()/state/``, read fresh and written atomically."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from lsp_server.errors import StorageError
from lsp_server.paths import data_dir

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
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: {exc.strerror or exc}", data={"path": str(path)}
        ) from exc
