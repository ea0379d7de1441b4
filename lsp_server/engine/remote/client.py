"""The HTTP side of one remote server: base URL, time limits, the API key, typed errors.

A :class:`ServerClient` owns the httpx client of one role's server. Its requests send the
key (read from the environment variable the settings name, at each request) as a Bearer
token, name the model in their bodies, and fail with :class:`RemoteError` only: transport
failures and failing statuses are classified by :mod:`lsp_server.engine.remote.errors`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import httpx

from lsp_server.engine.base import GenerationResult
from lsp_server.engine.remote.config import ENV_NAME, RemoteConfig
from lsp_server.engine.remote.errors import RemoteError, http_error, transport_error

# httpx logs every request at INFO; the server's own messages say what matters.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class ServerClient:
    """HTTP requests to one server, with its key and model; failures as :class:`RemoteError`."""

    def __init__(
        self, config: RemoteConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.url = config.display_url
        """The URL as shown (no credentials)."""
        self.model_id = config.model
        """The model requests name: the setting, then the id ``/v1/models`` lists for it."""
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            write=config.read_timeout_s,
            pool=config.connect_timeout_s,
        )
        self._http = httpx.AsyncClient(
            base_url=config.url or "http://invalid.invalid",
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            trust_env=True,  # HTTPS_PROXY/NO_PROXY and SSL_CERT_FILE apply, as with curl
        )

    def headers(self, stream: bool = False) -> dict[str, str]:
        """What every request sends: what it accepts, and the key when its variable is set."""
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        name = self.config.api_key_env
        if name and ENV_NAME.match(name):
            key = os.environ.get(name)
            if key:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    def with_model(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` naming the model (when one is known; else the server's default serves)."""
        if self.model_id:
            body["model"] = self.model_id
        return body

    # --- errors ---
    def http_error(
        self, response: httpx.Response, path: str, partial: GenerationResult | None = None
    ) -> RemoteError:
        """The error for ``response`` (a failing status) to a request for ``path``."""
        return http_error(
            self.config,
            response.status_code,
            response.text if response.content else "",
            path=path,
            model=self.model_id,
            reason_phrase=response.reason_phrase,
            retry_after=response.headers.get("retry-after"),
            partial=partial,
        )

    def transport_error(
        self, exc: BaseException, *, mid_stream: bool = False, kept: bool = False
    ) -> RemoteError:
        """The error for a connection that failed with ``exc``."""
        return transport_error(self.config, exc, mid_stream=mid_stream, kept=kept)

    # --- requests ---
    async def get(self, path: str) -> httpx.Response:
        """GET ``path`` (any status); a transport failure raises :class:`RemoteError`."""
        try:
            return await self._http.get(path, headers=self.headers())
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body`` (naming the model) to ``path``; any status is returned."""
        try:
            return await self._http.post(path, json=self.with_model(body), headers=self.headers())
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc

    def stream(
        self, path: str, body: dict[str, Any]
    ) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        """POST ``body`` (naming the model) and hold the streamed response open; leaving the
        block closes it (the server sees the disconnect). httpx errors pass through."""
        return self._http.stream(
            "POST", path, json=self.with_model(body), headers=self.headers(stream=True)
        )

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` closed the client."""
        return self._http.is_closed

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._http.aclose()
