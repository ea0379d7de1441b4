"""Why a remote server could not serve a request: :class:`RemoteError` and its reasons.

Failures are classified by pure tables, never by the wording of one server:

- :func:`classify_http`: an HTTP status and the body the server sent with it;
- :func:`classify_transport`: an exception from the connection (refused, DNS, TLS, timeout,
  a stream cut in the middle, a malformed URL);
- :func:`classify_event`: an ``error`` the server sends inside a stream.

Each reason has one message template that says what to do. :func:`http_error`,
:func:`transport_error` and :func:`event_error` fill them in for one server's
:class:`~lsp_server.engine.remote.config.RemoteConfig` (its URL without credentials, the
model, the key's variable, the time limits); :func:`config_error` says why settings cannot
be used (``badConfig``).
"""

from __future__ import annotations

import email.utils
import errno
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from lsp_server.core.errors import OpenLlmError
from lsp_server.engine.base import GenerationResult
from lsp_server.engine.remote.config import ENV_NAME, RemoteConfig
from lsp_server.engine.remote.sse import loads

UNREACHABLE = frozenset({"connectionRefused", "dns", "tls", "connection", "timeout", "unavailable"})
"""Failure reasons that mean "the server cannot serve now" (completion may fall back)."""
CONTEXT_WORDS = ("context", "too long", "exceed", "maximum")
"""Words of a server's error text that mean the prompt did not fit the model's context."""


class RemoteError(OpenLlmError):
    """The remote server could not serve the request; ``data.reason`` says why:
    ``connectionRefused``, ``dns``, ``tls``, ``connection``, ``timeout``, ``unauthorized``,
    ``forbidden``, ``modelNotFound``, ``notFound``, ``rateLimited`` (``retryAfterS``),
    ``contextExceeded``, ``badRequest``, ``unavailable`` (502-504), ``serverError``,
    ``streamCut``, ``badResponse`` or ``badConfig`` (the settings are wrong).
    ``data.url`` is the server's URL without credentials."""

    kind = "remoteError"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        url: str = "",
        status: int | None = None,
        retry_after_s: float | None = None,
        partial: GenerationResult | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        payload: dict[str, Any] = {"reason": reason, "url": url} if reason else {}
        if status is not None:
            payload["status"] = status
        if retry_after_s is not None:
            payload["retryAfterS"] = retry_after_s
        if partial is not None:
            payload["partial"] = partial
        payload.update(data or {})  # (a copy re-raised with the data of the original)
        super().__init__(message, data=payload)
        self.reason = str(payload.get("reason", "serverError"))
        status = payload.get("status")
        self.status = status if isinstance(status, int) else None

    @property
    def unreachable(self) -> bool:
        """Whether the server cannot be reached or is down (not a refusal of the request)."""
        return self.reason in UNREACHABLE


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


def config_error(config: RemoteConfig) -> RemoteError | None:
    """Why ``config`` cannot be used (reason ``badConfig``), or None; never echoes a key."""
    url = config.url
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if not url or scheme not in ("http", "https"):
        return RemoteError(
            "openLlm.remote.url is not set to an http:// or https:// URL (for example "
            "http://gpu-box:8080): set it in your user settings and restart the language "
            "server.",
            reason="badConfig",
            url=config.display_url if url else "",
        )
    name = config.api_key_env
    if name and not ENV_NAME.match(name):
        return RemoteError(
            "openLlm.remote.apiKeyEnv must be the NAME of an environment variable (such "
            "as OPENLLM_API_KEY) that holds the key, not the key itself.",
            reason="badConfig",
            url=config.display_url,
        )
    return None


# ---------------------------------------------------------------------------
# HTTP statuses
# ---------------------------------------------------------------------------

HTTP_RULES: tuple[tuple[frozenset[int], tuple[str, ...], str], ...] = (
    (frozenset({401}), (), "unauthorized"),
    (frozenset({403}), (), "forbidden"),
    (frozenset({404}), ("model",), "modelNotFound"),
    (frozenset({404, 405}), (), "notFound"),
    (frozenset({429}), (), "rateLimited"),
    (frozenset({400, 413, 422}), CONTEXT_WORDS, "contextExceeded"),
    (frozenset({400, 413, 422}), (), "badRequest"),
    (frozenset({502, 503, 504}), (), "unavailable"),
)
"""``(statuses, words, reason)``: the first row whose statuses hold the status, and whose
words (when it has any) one appears in the error's text, gives the reason; any other
failing status is ``serverError``."""

HTTP_MESSAGES = {
    "unauthorized": "{url} refused the API key (401). {key_hint}",
    "forbidden": "{url} denied access (403): {detail}. {key_hint}",
    "modelNotFound": "{url} has no model {model!r} (404: {detail}). Set openLlm.remote.model to "
    "one of the names its /v1/models lists.",
    "notFound": "{url} has no {path} ({status}): check openLlm.remote.url (the server's base "
    "URL, such as http://gpu-box:8080) and that it is an OpenAI-compatible server.",
    "rateLimited": "{url} is busy (429 Too Many Requests): {when}.",
    "contextExceeded": "The prompt is too long for the model on {url}: {detail}",
    "badRequest": "{url} rejected the request ({status}): {detail}",
    "unavailable": "{url} is not available right now ({status}): {detail}",
    "serverError": "{url} failed ({status}): {detail}",
}
"""The message of each reason :func:`classify_http` gives."""


def classify_http(status: int, body: str) -> str:
    """The reason a request failed with HTTP ``status`` (400 or more) and ``body``."""
    detail = error_detail(body).lower()
    for statuses, words, reason in HTTP_RULES:
        if status in statuses and (not words or any(w in detail for w in words)):
            return reason
    return "serverError"


def http_error(
    config: RemoteConfig,
    status: int,
    body: str,
    *,
    path: str,
    model: str = "",
    reason_phrase: str = "",
    retry_after: str | None = None,
    partial: GenerationResult | None = None,
) -> RemoteError:
    """The error for a response with a failing ``status`` to a request for ``path`` on the
    server of ``config`` (``model``: the one requested, if not the setting;
    ``retry_after``: the response's ``Retry-After`` header)."""
    reason = classify_http(status, body)
    retry = parse_retry_after(retry_after) if reason == "rateLimited" else None
    url = config.display_url
    message = HTTP_MESSAGES[reason].format(
        url=url,
        status=status,
        path=path,
        model=model or config.model,
        detail=error_detail(body, reason_phrase),
        key_hint=key_hint(config.api_key_env),
        when=f"try again in {retry:g} s" if retry is not None else "try again shortly",
    )
    return RemoteError(
        message,
        reason=reason,
        url=url,
        status=status,
        retry_after_s=retry,
        partial=partial,
    )


def error_detail(body: str, fallback: str = "") -> str:
    """The server's own words for a failure: the ``error``/``detail``/``message`` of a JSON
    body, else the body, else ``fallback`` (one line, at most 300 characters)."""
    parsed = loads(body) if body else None
    message: Any = None
    if isinstance(parsed, dict):
        err = parsed.get("error", parsed.get("detail", parsed.get("message")))
        message = err.get("message") if isinstance(err, dict) else err
    if not message:
        message = body.strip() or fallback
    return str(message).replace("\n", " ").strip()[:300]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, round(when.timestamp() - time.time(), 1))


def key_hint(api_key_env: str) -> str:
    """What to do about a refused key: name the variable, and say whether it is set."""
    if not api_key_env:
        return (
            "Set openLlm.remote.apiKeyEnv to the name of an environment variable holding "
            "the key (for example OPENLLM_API_KEY) and start the editor with it set."
        )
    if not os.environ.get(api_key_env):
        return (
            f"The environment variable {api_key_env} (openLlm.remote.apiKeyEnv) is not set in "
            "the editor's environment: set it and restart the editor."
        )
    return f"Check the API key in the environment variable {api_key_env}."


# ---------------------------------------------------------------------------
# Errors inside a stream
# ---------------------------------------------------------------------------

EVENT_MESSAGES = {
    "contextExceeded": HTTP_MESSAGES["contextExceeded"],
    "serverError": "{url} failed while answering: {detail}",
}
"""The message of each reason :func:`classify_event` gives."""


def classify_event(error: Any) -> str:
    """The reason of an ``error`` sent inside a stream (an object with ``message``, or text)."""
    text = _event_text(error).lower()
    return "contextExceeded" if any(w in text for w in CONTEXT_WORDS) else "serverError"


def event_error(config: RemoteConfig, error: Any) -> RemoteError:
    """The error for an ``error`` the server sent inside a stream."""
    code = error.get("code") if isinstance(error, dict) else None
    reason = classify_event(error)
    url = config.display_url
    return RemoteError(
        EVENT_MESSAGES[reason].format(url=url, detail=_event_text(error)),
        reason=reason,
        url=url,
        status=code if isinstance(code, int) else None,
    )


def _event_text(error: Any) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    return str(message or error)[:300]


# ---------------------------------------------------------------------------
# Transport failures
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    exc: BaseException
    chain: list[BaseException]
    text: str
    """Every message of the chain, lower case."""
    mid_stream: bool

    def has(self, *types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in self.chain)

    def says(self, *words: str) -> bool:
        return any(w in self.text for w in words)


def _refused(f: _Failure) -> bool:
    errnos = [e.errno for e in f.chain if isinstance(e, OSError)]
    return (
        f.has(ConnectionRefusedError)
        or errno.ECONNREFUSED in errnos
        or f.says("connection refused", "connect call failed")
    )


_DNS_WORDS = (
    "name or service not known",
    "nodename nor servname",
    "getaddrinfo",
    "name resolution",
    "no address associated",
)

TRANSPORT_RULES: tuple[tuple[Callable[[_Failure], bool], str, str], ...] = (
    (
        lambda f: isinstance(f.exc, httpx.ConnectTimeout),
        "timeout",
        "Could not connect to {url} within {connect_timeout_s:g} s.",
    ),
    (
        lambda f: isinstance(f.exc, httpx.TimeoutException),
        "timeout",
        "{url} sent nothing for {read_timeout_s:g} s: it is too slow or stuck.{kept}",
    ),
    (
        lambda f: f.mid_stream and isinstance(f.exc, httpx.TransportError),
        "streamCut",
        "{url} closed the connection in the middle of the answer; the partial answer is kept.",
    ),
    (
        lambda f: isinstance(f.exc, httpx.InvalidURL | httpx.UnsupportedProtocol),
        "badConfig",
        "openLlm.remote.url is not a valid URL: {error}",
    ),
    (
        lambda f: f.has(ssl.SSLError) or f.says("ssl", "tls"),
        "tls",
        "The TLS handshake with {url} failed ({short}): check that the URL's scheme "
        "(http/https) matches the server and that its certificate is trusted by this machine.",
    ),
    (
        lambda f: f.has(socket.gaierror) or f.says(*_DNS_WORDS),
        "dns",
        "Cannot resolve the host of {url}: check openLlm.remote.url and the network.",
    ),
    (
        _refused,
        "connectionRefused",
        "{url} refused the connection: is the server running and listening on that address "
        "and port?",
    ),
    (lambda f: True, "connection", "Cannot reach {url}: {short}"),
)
"""``(test, reason, message)``: the first row whose test holds for the failure wins (the
last always does)."""


def _transport_rule(exc: BaseException, mid_stream: bool) -> tuple[str, str]:
    chain = _chain(exc)
    failure = _Failure(exc, chain, " ".join(str(e) for e in chain).lower(), mid_stream)
    for test, reason, message in TRANSPORT_RULES:
        if test(failure):
            return reason, message
    raise AssertionError("the last transport rule matches everything")  # pragma: no cover


def classify_transport(exc: BaseException, *, mid_stream: bool = False) -> str:
    """The reason a request failed with ``exc`` (``mid_stream``: after the response's
    headers arrived, so a dropped connection cut the answer)."""
    return _transport_rule(exc, mid_stream)[0]


def transport_error(
    config: RemoteConfig,
    exc: BaseException,
    *,
    mid_stream: bool = False,
    kept: bool = False,
    partial: GenerationResult | None = None,
) -> RemoteError:
    """The error for a connection that failed with ``exc`` (``kept``: some of the answer
    arrived and is kept)."""
    reason, message = _transport_rule(exc, mid_stream)
    url = config.display_url
    text = message.format(
        url=url,
        connect_timeout_s=config.connect_timeout_s,
        read_timeout_s=config.read_timeout_s,
        kept=" The partial answer is kept." if kept else "",
        error=exc,
        short=_short(exc),
    )
    return RemoteError(text, reason=reason, url=url, partial=partial)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in seen:
        seen.append(node)
        node = node.__cause__ or node.__context__
    return seen


def _short(exc: BaseException) -> str:
    for e in _chain(exc):
        text = str(e).strip()
        if text:
            return text[:200]
    return type(exc).__name__
