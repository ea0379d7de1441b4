"""One helper for ``$/progress``: create a token, begin, report, always end."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from lsp_server.protocol.server import OpenLlmServer

log = logging.getLogger(__name__)


class ProgressReporter:
    """Work-done progress for one task; silently does nothing if the client refuses it."""

    def __init__(self, server: OpenLlmServer, title: str, cancellable: bool = False) -> None:
        self.server = server
        self.title = title
        self.cancellable = cancellable
        self.token: str | None = None
        self._last = -1

    async def begin(self, message: str = "") -> None:
        """Ask the client for a token and show the progress."""
        caps = self.server.client_capabilities
        if not (caps.window and caps.window.work_done_progress):
            return
        token = str(uuid.uuid4())
        try:
            await self.server.work_done_progress.create_async(token)
        except Exception as exc:  # the client may refuse; carry on without progress
            log.debug("client refused a progress token: %s", exc)
            return
        self.token = token
        self.server.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title=self.title, message=message, percentage=0, cancellable=self.cancellable
            ),
        )

    def report(self, percentage: int, message: str | None = None) -> None:
        """Report a new percentage (repeats are dropped)."""
        if self.token is None or percentage == self._last:
            return
        self._last = percentage
        self.server.work_done_progress.report(
            self.token, types.WorkDoneProgressReport(percentage=percentage, message=message)
        )

    def end(self, message: str = "") -> None:
        """Close the progress (call from ``finally``)."""
        if self.token is None:
            return
        self.server.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
        self.token = None
