"""stdout carries LSP frames and nothing else, even while llama.cpp loads a model."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_only_lsp_frames_on_stdout() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lsp_server", "-vv"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(
        frame(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"capabilities": {}, "processId": None},
            }
        )
    )
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    proc.stdin.flush()
    # Ask for status until the model is loaded (llama.cpp logs a lot meanwhile).
    for i in range(2, 600):
        proc.stdin.write(frame({"jsonrpc": "2.0", "id": i, "method": "openLlm/status"}))
        proc.stdin.flush()
        time.sleep(0.1)
        if i % 10 == 0:
            break
    time.sleep(3)
    proc.stdin.write(
        frame(
            {
                "jsonrpc": "2.0",
                "id": 999,
                "method": "openLlm/generate",
                "params": {"prompt": "Hi", "maxTokens": 3},
            }
        )
    )
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 1000, "method": "shutdown"}))
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
    proc.stdin.flush()
    out, err = proc.communicate(timeout=300)
    messages = parse_frames(out)
    ids = {m.get("id") for m in messages}
    assert {1, 999, 1000} <= ids
    generated = next(m for m in messages if m.get("id") == 999)
    assert "result" in generated, generated
    assert b"llama" in err.lower()  # native logs went to stderr instead
    assert proc.returncode == 0
