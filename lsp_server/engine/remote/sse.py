"""Server-sent events: the ``data`` of each event of a stream, from bytes split anywhere.

:class:`SSEDecoder` is pure: feed it the body's bytes as they arrive (a chunk may end in the
middle of a line, of a ``\\r\\n`` or of a UTF-8 character) and it returns each event's data
once the event is complete. Lines end with ``\\r\\n``, ``\\n`` or ``\\r`` only (a U+2028 inside
JSON text stays in its line); comments (keep-alive pings) and fields other than ``data`` are
skipped. llama-server reports failures as an ``error`` field: it comes out at once as the
data ``{"error": ...}``. :func:`event_data` reads an httpx response with it.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

_EOL = re.compile(r"\r\n|\r|\n")


class SSEDecoder:
    """Turn the bytes of an event stream into the data of its events, in order."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._started = False
        self._line = ""
        """The end of the text received so far that is not a whole line yet."""
        self._data: list[str] = []
        """The ``data`` lines of the event being received."""

    def feed(self, chunk: bytes) -> list[str]:
        """Take the next bytes of the stream; return the data of the events they complete."""
        return self._lines(self._utf8.decode(chunk), final=False)

    def close(self) -> list[str]:
        """The stream ended: return the data of the event it ended in, if any."""
        out = self._lines(self._utf8.decode(b"", final=True), final=True)
        if self._line:
            out += self._field(self._line)
            self._line = ""
        if self._data:
            out.append("\n".join(self._data))
            self._data = []
        return out

    def _lines(self, text: str, *, final: bool) -> list[str]:
        if not self._started and text:
            text = text.removeprefix("\ufeff")
            self._started = True
        buffer = self._line + text
        out: list[str] = []
        start = 0
        for match in _EOL.finditer(buffer):
            if match.group() == "\r" and match.end() == len(buffer) and not final:
                break  # perhaps the first half of "\r\n": wait for the next chunk
            out += self._field(buffer[start : match.start()])
            start = match.end()
        self._line = buffer[start:]
        return out

    def _field(self, line: str) -> list[str]:
        if not line:  # a blank line ends the event
            if not self._data:
                return []
            data, self._data = "\n".join(self._data), []
            return [data]
        if line.startswith(":"):
            return []  # a comment / keep-alive ping
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "error":
            return [json.dumps({"error": loads(value) or value})]
        return []


async def event_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each event of ``response`` as it arrives (its whole body when the
    server answered with plain JSON instead of a stream)."""
    if response.headers.get("content-type", "").startswith("application/json"):
        yield (await response.aread()).decode("utf-8", "replace")
        return
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for data in decoder.feed(chunk):
            yield data
    for data in decoder.close():
        yield data


def loads(text: str) -> Any:
    """Parse JSON; None when ``text`` is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None
