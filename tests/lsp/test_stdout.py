"""stdout carries LSP frames and nothing else, even while llama.cpp loads a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time


def frame(payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def parse_frames(data: bytes) -> list[dict[str, object]]:
    """Parse stdout strictly: any byte outside a frame fails the test."""
    messages = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n\r\n", pos)
        headers = data[pos:end].decode("ascii").split("\r\n")
        length = None
        for header in headers:
            name, _, value = header.partition(": ")
            assert name in ("Content-Length", "Content-Type"), f"stray output: {header!r}"
            if name == "Content-Length":
                length = int(value)
        assert length is not None
        body = data[end + 4 : end + 4 + length]
        assert len(body) == length
        messages.append(json.loads(body))
        pos = end + 4 + length
    return messages


class RawClient:
    """Speaks JSON-RPC to the server by hand and keeps every stdout byte."""

    def __init__(self, *args: str) -> None:
        # stderr goes to a file: an unread pipe fills up and blocks a chatty server.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.out = b""
        self.err = b""
        self._buf = b""

    def send(self, payload: dict[str, object]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(frame(payload))
        self.proc.stdin.flush()

    def read_response(self, msg_id: int, timeout: float = 300) -> dict[str, object]:
        """Read frames until the response to ``msg_id`` arrives."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\r\n\r\n" in self._buf:
                head, _, rest = self._buf.partition(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                if len(rest) < length:
                    break
                body, self._buf = rest[:length], rest[length:]
                message = json.loads(body)
                if message.get("id") == msg_id and "method" not in message:
                    return message  # type: ignore[no-any-return]
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.out += chunk
            self._buf += chunk
        raise AssertionError(f"no response to {msg_id}")

    def finish(self) -> int:
        self.send({"jsonrpc": "2.0", "method": "exit"})
        out, _ = self.proc.communicate(timeout=120)
        self.out += out
        self._stderr.seek(0)
        self.err = self._stderr.read()
        self._stderr.close()
        return self.proc.returncode


def test_only_lsp_frames_on_stdout() -> None:
    client = RawClient("-vv")
    client.send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"capabilities": {}, "processId": None},
        }
    )
    client.read_response(1)
    client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    for i in range(2, 3000):  # wait for the models (llama.cpp logs a lot meanwhile)
        client.send({"jsonrpc": "2.0", "id": i, "method": "openLlm/status"})
        status = client.read_response(i)["result"]
        assert isinstance(status, dict)
        if status["state"] != "loading":
            break
        time.sleep(0.1)
    assert status["state"] == "ready", status
    client.send(
        {
            "jsonrpc": "2.0",
            "id": 9999,
            "method": "openLlm/generate",
            "params": {"prompt": "Hi", "maxTokens": 3},
        }
    )
    assert "result" in client.read_response(9999)
    client.send({"jsonrpc": "2.0", "id": 10000, "method": "shutdown"})
    assert "result" in client.read_response(10000)
    assert client.finish() == 0
    messages = parse_frames(client.out)  # strict: any stray byte fails
    assert len(messages) > 5
    assert b"llama" in client.err.lower()  # native logs went to stderr instead


def test_unparseable_params_still_get_a_response() -> None:
    """Params that cannot be deserialized are answered with InvalidParams, not dropped."""
    client = RawClient("--stdio")  # vscode-languageclient passes --stdio
    init = {
        "capabilities": {},
        "processId": None,
        "initializationOptions": {"openLlm": {"completion": {"enabled": False}}},
    }
    client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
    client.read_response(1)
    client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    bad = {
        2: ("textDocument/hover", {"textDocument": 5}),
        3: ("textDocument/completion", {"position": "nowhere"}),
        4: ("openLlm/generate", "not an object"),
        5: ("textDocument/inlineCompletion", {"textDocument": {"uri": 1}}),
    }
    for msg_id, (method, params) in bad.items():
        client.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    for msg_id in bad:
        response = client.read_response(msg_id)
        assert response["error"]["code"] == -32602, response  # type: ignore[index]
    client.send({"jsonrpc": "2.0", "id": 6, "method": "openLlm/status"})
    assert "result" in client.read_response(6)
    client.send({"jsonrpc": "2.0", "id": 7, "method": "shutdown"})
    assert "result" in client.read_response(7)
    assert client.finish() == 0


def test_tcp_mode_serves_on_loopback() -> None:
    """``--tcp`` serves the same protocol on a loopback port (for debugging)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", "--tcp", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "server did not listen"
                    time.sleep(0.2)
            with conn:
                conn.sendall(
                    frame(
                        {
                            "jsonrpc": "2.0",
                            "id": 1,
                            "method": "initialize",
                            "params": {"capabilities": {}, "processId": None},
                        }
                    )
                )
                data = b""
                while b"serverInfo" not in data:
                    chunk = conn.recv(65536)
                    assert chunk, "connection closed"
                    data += chunk
                body = data.split(b"\r\n\r\n", 1)[1]
                assert b'"open-llm-lsp"' in body
        finally:
            proc.terminate()
            proc.wait(timeout=30)
