"""Where and how a role talks to a remote server: :class:`RemoteConfig` and its URL.

The URL is normalized once (no trailing ``/v1``: endpoints add it) and shown only through
:func:`display_url`, which drops any user, password, query or fragment. The API key is
never part of the configuration: only the NAME of the environment variable that holds it.
The settings are mapped to it by :func:`lsp_server.config.engines.remote_configs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""What ``api_key_env`` must look like: a variable's name (anything else may be the key)."""


@dataclass(frozen=True)
class RemoteConfig:
    """Where and how one role talks to a remote server (everything that forces a reconnect)."""

    url: str
    """The server's base URL, without a trailing ``/v1``."""
    model: str = ""
    api_key_env: str = ""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    context_length: int = 0
    health_interval_s: float = 30.0
    completion_api: str = "auto"
    completion_timeout_s: float = 3.0
    fallback_to_local: bool = False

    @property
    def display_url(self) -> str:
        """The URL as shown in status and messages: no user, password, query or fragment."""
        return display_url(self.url)


def display_url(url: str) -> str:
    """Return ``url`` without credentials, query or fragment (safe to show and log)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def normalize_url(url: str) -> str:
    """Strip spaces, trailing slashes and a trailing ``/v1`` (endpoints add it)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1").rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
