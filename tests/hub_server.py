"""A fake Hugging Face Hub on 127.0.0.1 for the hub tests (``HF_ENDPOINT`` points at it).

It serves what ``huggingface_hub`` 1.x/2.x asks for:

* ``GET /api/models/{repo}[/revision/{rev}]`` — model info: ``sha``, ``gated``,
  ``cardData.license``, ``siblings`` with sizes, blob ids and LFS SHA-256.
* ``GET /api/models/{repo}/tree/{rev}[/{path}]`` and ``POST .../paths-info/{rev}`` —
  what :class:`huggingface_hub.HfFileSystem` lists.
* ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` — ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag`` and ``X-Linked-Size`` for LFS files, ``Accept-Ranges``, and
  ``Range`` requests answered with 206 and ``Content-Range``.

Faults the tests switch on: a gated repository (401 without a token, 403 with a token
that has no access), a connection cut once after N body bytes, a wrong advertised
SHA-256, a per-file transfer rate (to cancel mid-way), and stopping the server (offline).
Every request is logged with the body bytes sent, so tests can tell a header read from
a download.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

_CHUNK = 64 * 1024


@dataclass
class HubFile:
    """A file of a fake repository: bytes in memory or a file on disk."""

    name: str
    data: bytes | None = None
    path: Path | None = None
    lfs: bool = True
    advertised_sha256: str | None = None  # set to make the checksum wrong

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return self.path.stat().st_size

    def read(self, start: int, length: int) -> bytes:
        if self.data is not None:
            return self.data[start : start + length]
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(start)
            return f.read(length)

    def _digest(self, algo: str, prefix: bytes = b"") -> str:
        h = hashlib.new(algo)
        h.update(prefix)
        pos = 0
        while pos < self.size:
            block = self.read(pos, 4 << 20)
            h.update(block)
            pos += len(block)
        return h.hexdigest()

    @property
    def sha256(self) -> str:
        if self.advertised_sha256:
            return self.advertised_sha256
        if not hasattr(self, "_sha256"):
            self._sha256 = self._digest("sha256")
        return self._sha256

    @property
    def git_sha1(self) -> str:
        if not hasattr(self, "_sha1"):
            self._sha1 = self._digest("sha1", f"blob {self.size}\0".encode())
        return self._sha1

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_sha1

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "file", "oid": self.git_sha1, "size": self.size, "path": self.name,
        }  # fmt: skip
        if self.lfs:
            out["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": 134}
        return out


@dataclass
class HubRepo:
    """A fake model repository."""

    repo: str
    files: dict[str, HubFile]
    commit: str
    license: str | None = None
    gated: bool = False
    card: dict[str, Any] = field(default_factory=dict)
    allowed_tokens: set[str] = field(default_factory=set)


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int
    authorization: bool


class FakeHub:
    """The fake Hub: add repositories, start, inspect the request log, stop."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[Request] = []
        self.cut_after: dict[tuple[str, str], int] = {}  # (repo, file) -> bytes, once
        self.rate: dict[tuple[str, str], int] = {}  # (repo, file) -> bytes per second
        self._lock = threading.Lock()
        self.connections: set[Any] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- set-up -------------------------------------------------------------------------
    def add_repo(
        self,
        repo: str,
        files: dict[str, bytes | Path],
        *,
        license: str | None = "apache-2.0",
        gated: bool = False,
        card: dict[str, Any] | None = None,
        readme: bool = True,
    ) -> HubRepo:
        commit = hashlib.sha1(f"{repo}-{time.time_ns()}".encode()).hexdigest()
        entries: dict[str, HubFile] = {}
        for name, content in files.items():
            if isinstance(content, bytes):
                entries[name] = HubFile(name, data=content, lfs=name.endswith(".gguf"))
            else:
                entries[name] = HubFile(name, path=content)
        full_card = {"license": license, **(card or {})} if license else dict(card or {})
        if readme and "README.md" not in entries:
            front = "".join(f"{k}: {v}\n" for k, v in full_card.items())
            text = f"---\n{front}---\n\n# {repo}\n".encode()
            entries["README.md"] = HubFile("README.md", data=text, lfs=False)
        hub_repo = HubRepo(repo, entries, commit, license, gated, full_card)
        self.repos[repo] = hub_repo
        return hub_repo

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop listening and drop open keep-alive connections (the Hub is gone)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(2)

    # --- inspection ---------------------------------------------------------------------
    def log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def served(self, repo: str, name: str) -> int:
        """Body bytes sent for GETs of one file."""
        suffix = f"/{repo}/resolve/"
        with self._lock:
            return sum(
                r.body_bytes for r in self.requests
                if r.method == "GET" and suffix in r.path and r.path.endswith("/" + name)
            )  # fmt: skip

    def ranges(self, repo: str, name: str) -> list[str | None]:
        """The Range headers of the GETs of one file, in order."""
        with self._lock:
            return [
                r.range for r in self.requests
                if r.method == "GET" and f"/{repo}/resolve/" in r.path
                and r.path.endswith("/" + name)
            ]  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake.connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # --- plumbing -------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self._record(status, 0 if self.command == "HEAD" else len(body))

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._json(status, {"error": message}, headers)

    def _record(self, status: int, body_bytes: int) -> None:
        self.fake.log(
            Request(
                self.command,
                urlparse(self.path).path,
                self.headers.get("Range"),
                status,
                body_bytes,
                bool(self.headers.get("Authorization")),
            )
        )

    # --- routing --------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(length) if length else b""
        self._route()

    def _route(self) -> None:
        path = unquote(urlparse(self.path).path)
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?/?$", path)
        if m:
            return self._model_info(m.group(1), m.group(2))
        m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$", path)
        if m:
            return self._tree(m.group(1), m.group(2), m.group(3) or "")
        m = re.match(r"^/api/models/([^/]+/[^/]+)/paths-info/([^/]+)$", path)
        if m:
            return self._paths_info(m.group(1), m.group(2))
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            return self._resolve(m.group(1), m.group(2), m.group(3))
        self._error(404, "NotFound", f"no route {path}")

    def _repo(self, repo: str, rev: str | None) -> HubRepo | None:
        found = self.fake.repos.get(repo)
        if found is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if rev not in (None, "main", found.commit):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return found

    def _model_info(self, repo: str, rev: str | None) -> None:
        r = self._repo(repo, rev)
        if r is None:
            return
        tags = ["gguf"] + ([f"license:{r.license}"] if r.license else [])
        siblings = []
        for f in r.files.values():
            item: dict[str, Any] = {"rfilename": f.name, "size": f.size, "blobId": f.git_sha1}
            if f.lfs:
                item["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
            siblings.append(item)
        self._json(
            200,
            {
                "_id": r.commit[:24],
                "id": repo,
                "modelId": repo,
                "sha": r.commit,
                "private": False,
                "gated": "manual" if r.gated else False,
                "disabled": False,
                "tags": tags,
                "cardData": r.card,
                "siblings": siblings,
                "lastModified": "2025-01-01T00:00:00.000Z",
            },
        )

    def _tree(self, repo: str, rev: str, folder: str) -> None:
        r = self._repo(repo, rev)
        if r is None:
            return
        prefix = folder.strip("/")
        items = []
        dirs: set[str] = set()
        for f in r.files.values():
            if prefix and not f.name.startswith(prefix + "/"):
                continue
            rest = f.name[len(prefix) + 1 :] if prefix else f.name
            if "/" in rest:
                sub = (prefix + "/" if prefix else "") + rest.split("/", 1)[0]
                if sub not in dirs:
                    dirs.add(sub)
                    items.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": sub})
                continue
            items.append(f.entry())
        self._json(200, items)

    def _paths_info(self, repo: str, rev: str) -> None:
        r = self._repo(repo, rev)
        if r is None:
            return
        body = getattr(self, "_body", b"").decode()
        try:
            paths = json.loads(body).get("paths", [])
        except ValueError:
            paths = parse_qs(body).get("paths", [])
        if isinstance(paths, str):
            paths = [paths]
        self._json(200, [r.files[p].entry() for p in paths if p in r.files])

    def _resolve(self, repo: str, rev: str, name: str) -> None:
        r = self._repo(repo, rev)
        if r is None:
            return
        if r.gated:
            auth = self.headers.get("Authorization") or ""
            token = auth.removeprefix("Bearer ").strip()
            if not token:
                return self._error(
                    401, "GatedRepo",
                    f"Access to model {repo} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in.",
                )  # fmt: skip
            if token not in r.allowed_tokens:
                return self._error(
                    403, "GatedRepo",
                    f"Access to model {repo} is restricted and you are not in the authorized "
                    "list. Visit https://huggingface.co/{repo} to ask for access.",
                )  # fmt: skip
        f = r.files.get(name)
        if f is None:
            return self._error(404, "EntryNotFound", f"{name} does not exist", r.commit)
        size = f.size
        headers = {
            "X-Repo-Commit": r.commit,
            "ETag": f'"{f.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(size)
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted:
            m = re.match(r"bytes=(\d*)-(\d*)$", wanted.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else size - 1
            else:  # suffix range
                start = max(0, size - int(m.group(2)))
            end = min(end, size - 1)
            if start >= size or start > end:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            self._record(status, 0)
            return
        key = (repo, name)
        cut = self.fake.cut_after.pop(key, None)
        rate = self.fake.rate.get(key)
        sent = 0
        began = time.monotonic()
        try:
            while sent < length:
                n = min(_CHUNK, length - sent)
                if cut is not None:
                    n = min(n, cut - sent)
                    if n <= 0:
                        break
                block = f.read(start + sent, n)
                self.wfile.write(block)
                sent += len(block)
                if rate:
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._record(status, sent)
        if sent < length:  # cut: close the connection mid-body
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(2)
            except OSError:
                pass


def tiny_gguf(
    path: Path,
    *,
    license: str | None = "apache-2.0",
    layers: int = 2,
    embd: int = 128,
    vocab: int = 512,
    context: int = 4096,
    megabytes: float = 2.0,
    seed: int = 0,
    name: str = "Tiny Test Model",
) -> Path:
    """Write a small valid GGUF (llama architecture, F32 tensors, random weights) of about
    ``megabytes`` MB: enough for headers, fit tables and downloads, not for inference."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name(name)
    if license:
        writer.add_license(license)
    writer.add_block_count(layers)
    writer.add_context_length(context)
    writer.add_embedding_length(embd)
    writer.add_feed_forward_length(embd * 2)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(0)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(vocab)])
    writer.add_tensor("token_embd.weight", rng.random((vocab, embd), dtype=np.float32))
    per_layer = max(1, int(megabytes * 1e6 / 4 / layers / embd / embd))
    for i in range(layers):
        for t in range(per_layer):
            writer.add_tensor(
                f"blk.{i}.ffn_part{t}.weight", rng.random((embd, embd), dtype=np.float32)
            )
    writer.add_tensor("output_norm.weight", np.ones(embd, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running fake Hub, ``HF_ENDPOINT`` pointing at it, online mode, and a private
    Hugging Face cache and data directory for the test."""
    import huggingface_hub.constants as hf_constants

    fake = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", fake.start())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("OPEN_LLM_LSP_DATA_DIR", str(tmp_path / "data"))
    yield fake
    fake.stop()


def hub_env(fake: FakeHub, tmp_path: Path) -> dict[str, str]:
    """The environment of a server or CLI process using ``fake`` (online, private cache)."""
    import os

    env = dict(os.environ)
    for key in (
        "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_OIDC_RESOURCE",
        "HUGGINGFACE_HUB_CACHE",
    ):  # fmt: skip
        env.pop(key, None)
    env.update(
        HF_ENDPOINT=fake.url,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
        HF_TOKEN_PATH=str(tmp_path / "hf" / "token"),
        OPEN_LLM_LSP_DATA_DIR=str(tmp_path / "data"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env
