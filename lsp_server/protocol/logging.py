"""Logging for the server: stderr, an optional file, and the editor's output window.

stdout carries the protocol only, so nothing here ever writes there.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ClientLogHandler(logging.Handler):
    """Forward records to ``window/logMessage`` through ``send`` (set once connected)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.send: Callable[[int, str], None] | None = None
        self._busy = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.send is None or self._busy or record.name.startswith("pygls"):
            return
        self._busy = True  # a failure to send must not log recursively
        try:
            self.send(record.levelno, self.format(record))
        except Exception:
            pass
        finally:
            self._busy = False


def setup_logging(level: int, log_file: str | None) -> ClientLogHandler:
    """Send logs to stderr (and ``log_file``); return the handler for the client."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(level)
    stderr.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(stderr)
    if log_file:
        Path(log_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(log_file).expanduser(), encoding="utf-8")
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    client = ClientLogHandler()
    client.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root.addHandler(client)
    for noisy in ("pygls", "asyncio"):
        # pygls logs every message in full at INFO: only with -vv.
        noisy_level = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
        logging.getLogger(noisy).setLevel(noisy_level)
    return client


def set_level(level_name: str) -> None:
    """Apply ``openLlm.logLevel`` to what the editor's output window receives.

    stderr keeps the level chosen on the command line (``-v``/``-vv``).
    """
    level = getattr(logging, level_name.upper(), logging.INFO)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ClientLogHandler):
            handler.setLevel(level)
