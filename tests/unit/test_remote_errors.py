"""The remote engine's failure tables, without any server: HTTP statuses, transport
exceptions, errors inside a stream and bad settings, each with the message it shows."""

from __future__ import annotations

import email.utils
import errno
import json
import re
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from lsp_server.engine.remote.config import RemoteConfig
from lsp_server.engine.remote.errors import (
    EVENT_MESSAGES,
    HTTP_MESSAGES,
    TRANSPORT_RULES,
    UNREACHABLE,
    RemoteError,
    classify_event,
    classify_http,
    classify_transport,
    config_error,
    error_detail,
    event_error,
    http_error,
    parse_retry_after,
    transport_error,
)

CONFIG = RemoteConfig(
    url="http://gpu-box:8080",
    model="qwen-32b",
    api_key_env="TEAM_KEY",
    connect_timeout_s=2.5,
    read_timeout_s=30,
)
URL = CONFIG.display_url
DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def openai_error(message: str) -> str:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error"}})


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (401, openai_error("Invalid API key"), "unauthorized"),
        (401, "", "unauthorized"),
        (403, '{"detail": "Forbidden"}', "forbidden"),
        (404, openai_error("The model 'llama-70b' does not exist"), "modelNotFound"),
        (404, '{"error": "model \\"x\\" not found, try pulling it first"}', "modelNotFound"),
        (404, '{"detail": "Not Found"}', "notFound"),
        (404, '{"error": {"message": "Not Found", "param": "model"}}', "notFound"),
        (405, "Method Not Allowed", "notFound"),
        (429, openai_error("Rate limit reached"), "rateLimited"),
        (400, openai_error("the request exceeds the available context size"), "contextExceeded"),
        (
            400,
            openai_error("This model's maximum context length is 4096 tokens"),
            "contextExceeded",
        ),
        (413, "Prompt too long", "contextExceeded"),
        (422, '{"detail": [{"msg": "Input should be a valid integer"}]}', "badRequest"),
        (400, openai_error("suffix is not currently supported"), "badRequest"),
        (500, openai_error("CUDA error: out of memory"), "serverError"),
        (501, "", "serverError"),
        (408, "", "serverError"),
        (502, "Bad Gateway", "unavailable"),
        (503, openai_error("Loading model"), "unavailable"),
        (504, "", "unavailable"),
    ],
)
def test_http_statuses(status: int, body: str, reason: str) -> None:
    assert classify_http(status, body) == reason
    err = http_error(CONFIG, status, body, path="/v1/chat/completions", reason_phrase="Phrase")
    assert (err.reason, err.status, err.data["status"]) == (reason, status, status)
    assert err.kind == "remoteError" and err.data["url"] == URL
    assert URL in err.message and err.unreachable == (reason == "unavailable")


def test_the_servers_own_words_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    assert error_detail(openai_error("Loading model")) == "Loading model"
    assert error_detail('{"detail": "Not Found"}') == "Not Found"
    assert error_detail('{"message": "slot busy"}') == "slot busy"
    assert error_detail("line one\nline two ") == "line one line two"
    assert error_detail("", "Service Unavailable") == "Service Unavailable"
    assert len(error_detail("x" * 1000)) == 300
    err = http_error(CONFIG, 503, openai_error("Loading model"), path="/v1/models")
    assert err.message == "http://gpu-box:8080 is not available right now (503): Loading model"


def test_a_refused_key_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEAM_KEY", raising=False)
    err = http_error(CONFIG, 401, "", path="/v1/models")
    assert "TEAM_KEY" in err.message and "not set" in err.message
    monkeypatch.setenv("TEAM_KEY", "sk-secret-value")
    err = http_error(CONFIG, 403, openai_error("no access to this model"), path="/v1/models")
    assert "Check the API key in the environment variable TEAM_KEY" in err.message
    assert "no access to this model" in err.message and "sk-secret" not in err.message
    keyless = http_error(RemoteConfig(url=URL), 401, "", path="/v1/models")
    assert "Set openLlm.remote.apiKeyEnv" in keyless.message


def test_messages_name_the_model_and_the_path() -> None:
    missing = http_error(CONFIG, 404, openai_error("model not found"), path="/v1/completions")
    assert "'qwen-32b'" in missing.message and "openLlm.remote.model" in missing.message
    listed = http_error(CONFIG, 404, "model gone", path="/v1/completions", model="qwen:32b")
    assert "no model 'qwen:32b'" in listed.message  # the id the server listed for it
    no_path = http_error(CONFIG, 404, "", path="/infill", reason_phrase="Not Found")
    assert "has no /infill (404)" in no_path.message and "openLlm.remote.url" in no_path.message


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_429_carries_the_retry_time(header: str | None, seconds: float | None) -> None:
    err = http_error(CONFIG, 429, "", path="/v1/chat/completions", retry_after=header)
    assert err.reason == "rateLimited" and err.data.get("retryAfterS") == seconds
    if seconds is None:
        assert "try again shortly" in err.message
    else:
        assert f"try again in {seconds:g} s" in err.message


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    seconds = parse_retry_after(when)
    assert seconds is not None and 50 <= seconds <= 61
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "mid_stream", "reason", "shown"),
    [
        (
            caused(httpx.ConnectError(""), ConnectionRefusedError(111, "Connection refused")),
            False,
            "connectionRefused",
            "is the server running",
        ),
        (
            caused(httpx.ConnectError("x"), OSError(errno.ECONNREFUSED, "refused")),
            False,
            "connectionRefused",
            "refused the connection",
        ),
        (
            httpx.ConnectError("[Errno 111] Connect call failed ('127.0.0.1', 9)"),
            False,
            "connectionRefused",
            "refused the connection",
        ),
        (
            caused(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            False,
            "dns",
            "Cannot resolve the host of http://gpu-box:8080",
        ),
        (httpx.ConnectError("[Errno 11001] getaddrinfo failed"), False, "dns", "resolve"),
        (
            caused(httpx.ConnectError("x"), ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER]")),
            False,
            "tls",
            "TLS handshake with http://gpu-box:8080 failed",
        ),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]"), False, "tls", "trusted"),
        (httpx.ConnectTimeout("timed out"), False, "timeout", "within 2.5 s"),
        (httpx.ReadTimeout("timed out"), False, "timeout", "sent nothing for 30 s"),
        (httpx.ReadTimeout("timed out"), True, "timeout", "too slow or stuck"),
        (httpx.PoolTimeout("timed out"), False, "timeout", "too slow or stuck"),
        (
            httpx.RemoteProtocolError("peer closed connection without sending complete body"),
            True,
            "streamCut",
            "partial answer is kept",
        ),
        (httpx.ReadError("connection reset"), True, "streamCut", "in the middle of the answer"),
        (
            httpx.RemoteProtocolError("peer closed connection without sending complete body"),
            False,
            "connection",
            "Cannot reach http://gpu-box:8080: peer closed",
        ),
        (
            httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."),
            False,
            "badConfig",
            "openLlm.remote.url is not a valid URL",
        ),
        (httpx.InvalidURL("Invalid port: 'x'"), False, "badConfig", "Invalid port"),
        (httpx.ConnectError(""), False, "connection", "Cannot reach http://gpu-box:8080: "),
    ],
)
def test_transport_failures(exc: BaseException, mid_stream: bool, reason: str, shown: str) -> None:
    assert classify_transport(exc, mid_stream=mid_stream) == reason
    err = transport_error(CONFIG, exc, mid_stream=mid_stream)
    assert err.reason == reason and shown in err.message and err.data["url"] == URL
    assert err.unreachable == (
        reason in ("connectionRefused", "dns", "tls", "timeout", "connection")
    )
    assert "status" not in err.data


def test_a_message_never_comes_out_empty() -> None:
    err = transport_error(CONFIG, httpx.ConnectError(""))
    assert err.message == "Cannot reach http://gpu-box:8080: ConnectError"


def test_a_read_timeout_says_whether_the_partial_answer_is_kept() -> None:
    kept = transport_error(CONFIG, httpx.ReadTimeout(""), mid_stream=True, kept=True)
    assert kept.message.endswith("The partial answer is kept.")
    assert "kept" not in transport_error(CONFIG, httpx.ReadTimeout("")).message


@pytest.mark.parametrize(
    ("error", "reason", "status"),
    [
        (
            {"message": "the request exceeds the available context size", "code": 400},
            "contextExceeded",
            400,
        ),
        ({"message": "prompt too long", "type": "server_error"}, "contextExceeded", None),
        ({"message": "CUDA error", "code": 500}, "serverError", 500),
        ("slot unavailable", "serverError", None),
        ({"code": "oops"}, "serverError", None),
    ],
)
def test_errors_inside_a_stream(error: object, reason: str, status: int | None) -> None:
    assert classify_event(error) == reason
    err = event_error(CONFIG, error)
    assert err.reason == reason and err.status == status and URL in err.message


@pytest.mark.parametrize(
    ("url", "key_env", "shown"),
    [
        ("", "", "openLlm.remote.url is not set"),
        ("gpu-box:8080", "", "http:// or https://"),
        ("ftp://gpu-box", "", "http:// or https://"),
        ("http://[::1", "", "http:// or https://"),
        ("http://gpu-box:8080", "sk-live-abcdef", "NAME of an environment variable"),
        ("http://gpu-box:8080", "TEAM KEY", "NAME of an environment variable"),
    ],
)
def test_bad_settings(url: str, key_env: str, shown: str) -> None:
    err = config_error(RemoteConfig(url=url, api_key_env=key_env))
    assert err is not None and err.reason == "badConfig" and shown in err.message
    assert not err.unreachable and (not key_env or key_env not in err.message)


def test_good_settings() -> None:
    assert config_error(RemoteConfig(url="https://proxy/team/llm", api_key_env="TEAM_KEY")) is None
    assert config_error(RemoteConfig(url="http://127.0.0.1:8080")) is None


def documented_reasons(text: str) -> set[str]:
    return set(re.findall(r"`([a-z][A-Za-z]+)`", text))


def test_every_reason_is_documented() -> None:
    """The tables' reasons, and those the engine raises itself, are the documented ones."""
    made = {*HTTP_MESSAGES, *EVENT_MESSAGES, *(reason for _, reason, _ in TRANSPORT_RULES)}
    made |= {"badConfig", "badResponse", "modelNotFound", "streamCut", "timeout"}
    docs = DOCS.read_text(encoding="utf-8")
    errors = docs[docs.index("**Errors** (`remoteError`") : docs.index("**Trust.**")]
    assert made <= documented_reasons(errors)
    assert made <= documented_reasons(RemoteError.__doc__ or "")
    fallback = docs[docs.index("a completion that finds the server unreachable") :][:200]
    assert documented_reasons(fallback) >= UNREACHABLE
