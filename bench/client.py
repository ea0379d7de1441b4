"""A pygls client on a real server process, for benchmarks that stream chats over LSP."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any


class BenchChatClient:
    """Starts ``python -m lsp_server``, records chat deltas with their arrival time."""

    def __init__(self, name: str) -> None:
        from pygls.lsp.client import LanguageClient

        self.client = LanguageClient(name, "0")
        self.arrivals: list[tuple[float, dict[str, Any]]] = []

    async def start(self, data_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
        """Initialize with ``settings``; return the status once the chat role settled."""
        from lsprotocol import types

        from lsp_server.demo.client import plain

        client = self.client

        @client.feature("openLlm/chat/delta")
        def on_delta(ls: Any, params: Any) -> None:
            self.arrivals.append((time.perf_counter(), plain(params)))

        for method in (
            "openLlm/statusChanged",
            "openLlm/chat/changed",
            types.WINDOW_LOG_MESSAGE,
            types.WINDOW_SHOW_MESSAGE,
        ):
            client.feature(method)(lambda ls, params: None)
        env = dict(os.environ, OPEN_LLM_LSP_DATA_DIR=str(data_dir))
        await client.start_io(sys.executable, "-m", "lsp_server", env=env)
        stderr: Any = client._server.stderr  # type: ignore[attr-defined,union-attr]

        async def drain() -> None:  # keep the server's stderr pipe from filling up
            while await stderr.readline():
                pass

        self._drain = asyncio.ensure_future(drain())
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                initialization_options={"openLlm": settings},
            )
        )
        client.initialized(types.InitializedParams())
        while True:
            status: dict[str, Any] = await self.call("openLlm/status", {})
            if status["roles"]["chat"]["state"] in ("ready", "error"):
                return status
            await asyncio.sleep(0.1)

    async def call(self, method: str, params: Any) -> Any:
        """Send a request; return its result as plain JSON."""
        from lsp_server.demo.client import plain

        return plain(await self.client.protocol.send_request_async(method, params))

    async def stop(self) -> None:
        """Shut the server down and stop reading from it."""
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 30)
            self.client.exit(None)
        finally:
            await self.client.stop()  # type: ignore[no-untyped-call]
            await self._drain
