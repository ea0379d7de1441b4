"""pytest-lsp clients driving the real server process (``python -m lsp_server``)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.demo.client import plain

SERVER = [sys.executable, "-m", "lsp_server", "-v"]
CAPS = types.ClientCapabilities(
    window=types.WindowClientCapabilities(work_done_progress=True),
    workspace=types.WorkspaceClientCapabilities(
        configuration=True,
        did_change_configuration=types.DidChangeConfigurationClientCapabilities(),
    ),
)


def record_custom(client: LanguageClient) -> None:
    """Collect custom notifications on the client (``client.custom[method]``)."""
    custom: dict[str, list[dict[str, Any]]] = {}
    client.custom = custom  # type: ignore[attr-defined]
    for method in ("openLlm/statusChanged", "openLlm/generateDelta"):
        custom[method] = []

        def handler(ls: Any, params: Any, _m: str = method) -> None:
            custom[_m].append(plain(params))

        client.feature(method)(handler)


async def request(client: LanguageClient, method: str, params: Any = None) -> Any:
    """Send a custom request and return its result as plain JSON."""
    return plain(
        await client.protocol.send_request_async(method, params if params is not None else {})
    )


def send_cancellable(client: LanguageClient, method: str, params: Any, msg_id: str) -> Any:
    """Send a request with a known id; return an awaitable for its response."""
    return asyncio.wrap_future(client.protocol.send_request(method, params, msg_id=msg_id))


def cancel_request(client: LanguageClient, msg_id: str) -> None:
    """Send ``$/cancelRequest`` for ``msg_id``."""
    client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))


async def wait_state(client: LanguageClient, *states: str, timeout: float = 300) -> dict[str, Any]:
    """Poll ``openLlm/status`` until its state is one of ``states``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await request(client, "openLlm/status")
        if status["state"] in states:
            return status
        if loop.time() > deadline:
            raise AssertionError(f"state stayed {status['state']}: {status}")
        await asyncio.sleep(0.1)


@pytest_lsp.fixture(scope="session", config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient) -> Any:
    """One server on the bundled model for the session (the model loads once)."""
    record_custom(lsp_client)
    lsp_client.set_configuration(
        {
            "engine": {"contextLength": 2048, "batchSize": 64},
            # The bundled completion model is under the Gemma terms: accepted up front.
            "models": {"acceptedLicenses": ["gemma"]},
        },
        section="openLlm",
    )
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CAPS))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def fresh(lsp_client: LanguageClient) -> Any:
    """A server per test, initialized by the test itself (for settings and error paths)."""
    record_custom(lsp_client)
    yield
    await lsp_client.shutdown_session()
