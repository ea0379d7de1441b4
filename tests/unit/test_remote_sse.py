"""The server-sent events parser, on bytes split anywhere (no server)."""

from __future__ import annotations

import json

import pytest

from lsp_server.engine.remote.sse import SSEDecoder

STREAM = (
    "\ufeff: keep-alive\r\n"
    "\r\n"
    'data: {"choices": [{"delta": {"content": "h\u00e9llo \u2028 w\u00f6rld \U0001f600"}}]}\r\n'
    "\r\n"
    "event: message\n"
    "id: 7\n"
    "retry: 100\n"
    "data: first line\r\n"
    "data:second line\n"
    "\n"
    "data: [DONE]\r"
    "\r"
)
EVENTS = [
    '{"choices": [{"delta": {"content": "h\u00e9llo \u2028 w\u00f6rld \U0001f600"}}]}',
    "first line\nsecond line",
    "[DONE]",
]


def decode(chunks: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    out: list[str] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


def test_whole_stream() -> None:
    assert decode([STREAM.encode()]) == EVENTS


def test_every_split_point_gives_the_same_events() -> None:
    data = STREAM.encode()
    assert any(b >= 0x80 for b in data)  # multi-byte characters to split inside
    for cut in range(1, len(data)):
        assert decode([data[:cut], data[cut:]]) == EVENTS, cut


def test_one_byte_at_a_time() -> None:
    data = STREAM.encode()
    assert decode([data[i : i + 1] for i in range(len(data))]) == EVENTS


def test_an_event_is_given_only_once_it_is_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"data: b\r") == []  # a lone CR may be half of CRLF: wait
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == ["a\nb"]
    assert decoder.close() == []


def test_a_lone_cr_ends_a_line() -> None:
    assert decode([b"data: x\r\rdata: y\r", b"\r"]) == ["x", "y"]


def test_an_unterminated_last_event_is_kept_at_the_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}') == []
    assert decoder.close() == ['{"a": 1}']


def test_comments_and_other_fields_give_nothing() -> None:
    assert decode([b": ping\n\nevent: x\nid: 1\n\nretry: 5\n\n"]) == []


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            b'error: {"message": "context full", "code": 500}\n',
            {"message": "context full", "code": 500},
        ),
        (b"error: slot unavailable\n", "slot unavailable"),
    ],
)
def test_llama_server_error_fields_come_out_at_once(line: bytes, error: object) -> None:
    decoder = SSEDecoder()
    out = decoder.feed(b"data: partial\n" + line)
    assert [json.loads(d) for d in out] == [{"error": error}]
    assert decoder.close() == ["partial"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert decode([b"data: a\xff", b"b\n\n"]) == ["a\ufffdb"]


def test_a_field_without_colon_and_a_value_without_space() -> None:
    assert decode([b"data\ndata:x\n\n"]) == ["\nx"]
