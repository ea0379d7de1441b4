"""A small OpenAI-compatible HTTP server for the remote engine's error paths.

It runs on 127.0.0.1 in a thread of the test process. The model name in a request (or
the server's ``mode``) chooses what it does:

- ``ok``: streams ``PIECES`` then ``[DONE]`` (with usage);
- ``unauthorized`` / ``forbidden`` / ``missing`` / ``busy`` / ``broken`` / ``loading``:
  401 / 403 / 404 (unknown model) / 429 with ``Retry-After: 7`` / 500 / 503;
- ``cut``: streams three pieces, then drops the connection mid-body;
- ``stall``: sends the headers, then nothing (until the client goes away);
- ``endless``: a piece every 20 ms until the client disconnects (``disconnects`` records when).

``api_key`` makes every endpoint require ``Authorization: Bearer <key>``; ``infill`` adds
llama-server's ``/infill``; ``suffix`` (True, False) says whether ``/v1/completions`` takes
``suffix``; ``tokenize`` adds ``/tokenize``; ``openapi_title`` adds ``/openapi.json`` with
that title (llama-cpp-python's server is known by it). Every request is recorded in
``requests``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PIECES = ["Hello", ",", " team", " server", "!"]
MODELS = ["ok", "cut", "stall", "endless", "unauthorized", "forbidden", "busy", "broken"]
"""Models named after a behaviour; ``/v1/models`` lists ``default`` (the server's mode) first."""


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        *,
        mode: str = "ok",
        api_key: str | None = None,
        infill: bool = False,
        suffix: bool = True,
        tokenize: bool = False,
        context: int | None = 1024,
        openapi_title: str | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.api_key = api_key
        self.infill = infill
        self.suffix = suffix
        self.tokenize = tokenize
        self.context = context
        self.openapi_title = openapi_title
        self.models = ["default", *MODELS]
        self.requests: list[dict[str, Any]] = []
        self.disconnects: list[float] = []
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.shutdown()
        self.server_close()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing ---
    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": {"message": message, "code": status}}, headers)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: Any) -> None:
        self._chunk(f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n")

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _authorized(self) -> bool:
        key = self.server.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Invalid API key")
        return False

    def _record(self, body: Any) -> None:
        self.server.requests.append(
            {
                "path": self.path,
                "body": body,
                "auth": self.headers.get("Authorization"),
                "time": time.monotonic(),
            }
        )

    # --- routes ---
    def do_GET(self) -> None:
        self._record(None)
        if not self._authorized():
            return
        if self.path == "/v1/models":
            entries = []
            for name in self.server.models:
                entry: dict[str, Any] = {"id": name, "object": "model", "owned_by": "fake"}
                if self.server.context:
                    entry["max_model_len"] = self.server.context
                entries.append(entry)
            self._json(200, {"object": "list", "data": entries})
        elif self.path == "/openapi.json" and self.server.openapi_title is not None:
            self._json(200, {"openapi": "3.1.0", "info": {"title": self.server.openapi_title}})
        else:
            self._error(404, "Not Found")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        if not self._authorized():
            return
        path = self.path
        if path == "/tokenize" and self.server.tokenize:
            text = str(body.get("content", ""))
            self._json(200, {"tokens": list(range(len(text.split())))})
            return
        if path == "/infill" and not self.server.infill:
            self._error(404, "Not Found")
            return
        if path not in ("/v1/chat/completions", "/v1/completions", "/infill"):
            self._error(404, "Not Found")
            return
        if path == "/v1/completions" and "suffix" in body and not self.server.suffix:
            self._error(400, "suffix is not currently supported")
            return
        model = body.get("model")
        mode = model if model in MODELS or model == "missing" else self.server.mode
        if mode == "unauthorized":
            self._error(401, "Invalid API key")
        elif mode == "forbidden":
            self._error(403, "This key may not use this model")
        elif mode == "missing":
            self._error(404, f"The model '{model}' does not exist")
        elif mode == "busy":
            self._error(429, "Rate limit reached", {"Retry-After": "7"})
        elif mode == "broken":
            self._error(500, "CUDA error: out of memory")
        elif mode == "loading":
            self._error(503, "Loading model")
        elif not body.get("stream"):
            self._json(200, {"choices": [{"text": "x", "finish_reason": "length"}]})
        else:
            self._stream(path, mode, int(body.get("max_tokens") or body.get("n_predict") or 64))

    def _piece(self, path: str, text: str, finish: str | None = None) -> dict[str, Any]:
        if path == "/infill":
            return {"content": text, "stop": finish is not None}
        if path == "/v1/completions":
            return {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
        return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}

    def _stream(self, path: str, mode: str, max_tokens: int) -> None:
        self._start_stream()
        try:
            if mode == "stall":
                while not self.server.stop_event.wait(0.05):
                    pass
                return
            if mode == "endless":
                n = 0
                while not self.server.stop_event.is_set():
                    self._event(self._piece(path, f" {n}"))
                    n += 1
                    time.sleep(0.02)
                return
            pieces = PIECES[:max_tokens]
            for i, piece in enumerate(pieces):
                if mode == "cut" and i == 3:
                    self.wfile.flush()
                    self.connection.shutdown(2)  # mid-body: no terminating chunk
                    return
                self._event(self._piece(path, piece))
                time.sleep(0.01)
            finish = "length" if max_tokens <= len(PIECES) else "stop"
            if path == "/infill":
                self._event(
                    {
                        "content": "",
                        "stop": True,
                        "stop_type": "eos",
                        "timings": {"prompt_n": 9, "cache_n": 3, "predicted_n": len(pieces)},
                    }
                )
            else:
                self._event(self._piece(path, "", finish))
                usage = {"prompt_tokens": 12, "completion_tokens": len(pieces), "total_tokens": 17}
                self._event({"choices": [], "usage": usage})
                self._event("[DONE]")
            self._end()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.server.disconnects.append(time.monotonic())
            self.close_connection = True
