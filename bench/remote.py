"""bench.remote: a streamed chat from an OpenAI-compatible server, read directly vs through
the language server.

llama-cpp-python's own server (``python -m llama_cpp.server``) runs the bundled SmolLM2 on
127.0.0.1. The same chat (same messages, greedy, same token limit) is streamed

- directly: an httpx client reads ``/v1/chat/completions`` and times the events;
- through the language server: a real ``python -m lsp_server`` process with
  ``openLlm.remote.chat`` on that server answers ``openLlm/chat/send``, and the client times
  the ``openLlm/chat/delta`` notifications it receives.

Runs alternate (direct, server, direct, ...) so drift hits both. Tokens/s counts the pieces
after the first over the time they took, as the reader sees them. Target: through the
language server >= 0.95 x direct. As in a team, where the inference server has a machine of
its own, the server is pinned to half of the CPUs and both readers to the other half
(``--no-pin`` shares them all).

    python -m bench.remote [--json FILE] [--tokens 128] [--repeats 7] [--no-pin]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.client import BenchChatClient
from bench.common import print_table, write_json

TARGETS = {"tokens_per_s_ratio_min": 0.95}
QUESTION = (
    "Write the numbers from 1 to 300, separated by commas, and explain how a for loop in "
    "Python iterates over range(1, 301)."
)
SYSTEM = "You are a helpful assistant."


@dataclass
class LlamaServer:
    """A running ``llama_cpp.server`` process on loopback."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def llama_server(
    model: Path | None = None,
    *,
    n_ctx: int = 2048,
    log_dir: Path | None = None,
    timeout: float = 180,
    cpus: set[int] | None = None,
) -> Iterator[LlamaServer]:
    """Start llama-cpp-python's server on 127.0.0.1 with ``model`` (default: the bundled
    SmolLM2), wait until it lists its model, and stop it afterwards. ``cpus`` pins it (and
    every thread it starts) to those CPUs."""
    import httpx

    from lsp_server.models.bundled import bundled_smollm2_path

    model = model or bundled_smollm2_path()
    port = free_port()
    folder = log_dir or Path(tempfile.mkdtemp(prefix="llama-server-"))
    log = folder / "llama-server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(n_ctx),
        # Queue concurrent requests instead of cutting the running stream short.
        "--interrupt_requests", "False",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, NO_PROXY="*"),
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    url = f"http://127.0.0.1:{port}"
    server = LlamaServer(url, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited:\n{server.output()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/v1/models", timeout=2, trust_env=False).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start:\n{server.output()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# ---------------------------------------------------------------------------
# The two readers
# ---------------------------------------------------------------------------


def _rate(arrivals: list[float], pieces: int) -> float:
    if pieces < 2 or arrivals[-1] <= arrivals[0]:
        return 0.0
    return (pieces - 1) / (arrivals[-1] - arrivals[0])


async def direct_run(url: str, index: int, n_gen: int) -> dict[str, Any]:
    """Stream the chat with httpx and time each content event."""
    import httpx

    body = {
        "messages": [
            {"role": "system", "content": f"Run {index}. {SYSTEM}"},
            {"role": "user", "content": QUESTION},
        ],
        "stream": True,
        "max_tokens": n_gen,
        "temperature": 0,
        "top_p": 0.95,
        "top_k": 40,
        "min_p": 0.05,
    }
    arrivals: list[float] = []
    text: list[str] = []
    start = time.perf_counter()
    async with (
        httpx.AsyncClient(timeout=120, trust_env=False) as client,
        client.stream("POST", url + "/v1/chat/completions", json=body) as response,
    ):
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = (json.loads(line[6:]).get("choices") or [{}])[0]
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                arrivals.append(time.perf_counter())
                text.append(piece)
    return {
        "pieces": len(arrivals),
        "ttft_s": arrivals[0] - start if arrivals else 0.0,
        "tokens_per_s": _rate(arrivals, len(arrivals)),
        "text": "".join(text),
    }


class ServerClient(BenchChatClient):
    """A real server whose chat role is the remote server, timing deltas as they arrive."""

    def __init__(self) -> None:
        super().__init__("bench-remote")

    async def start(self, url: str, data_dir: Path) -> None:  # type: ignore[override]
        settings = {
            "remote": {"url": url, "chat": {"enabled": True}, "healthIntervalS": 0},
            "completion": {"enabled": False},
        }
        status = await super().start(data_dir, settings)
        health = status["roles"]["chat"].get("remote", {}).get("health")
        if status["roles"]["chat"]["state"] != "ready" or health != "ok":
            raise SystemExit(f"the language server cannot use {url}: {status['roles']['chat']}")

    async def run(self, index: int, n_gen: int) -> dict[str, Any]:
        chat = await self.call(
            "openLlm/chat/create",
            {"systemPrompt": f"Run {index}. {SYSTEM}", "title": "bench"},
        )
        self.arrivals.clear()
        start = time.perf_counter()
        result = await self.call(
            "openLlm/chat/send",
            {
                "chatId": chat["id"],
                "content": QUESTION,
                "generateTitle": False,
                "sampling": {
                    "maxTokens": n_gen,
                    "temperature": 0,
                    "topP": 0.95,
                    "topK": 40,
                    "minP": 0.05,
                    "repeatPenalty": 1.0,
                },
            },
        )
        times = [t for t, d in self.arrivals if d["delta"] or d["thinking"]]
        stats = result["stats"]
        return {
            "pieces": len(times),
            "ttft_s": times[0] - start if times else 0.0,
            "tokens_per_s": _rate(times, len(times)),
            "server_tokens_per_s": stats["tokensPerS"],
            "text": result["text"],
            "generated_tokens": stats["generatedTokens"],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the server and the readers share every CPU (default: keep them apart)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(_main(args))


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """CPUs for the inference server and for its clients, kept apart.

    In a team the server runs on its own GPU box; on one small machine the readers would
    steal its CPU instead (the language server path runs one process more than the direct
    reader), which measures contention, not streaming. With two or more CPUs the server gets
    the first half, the readers (this process, the language server it starts) the rest.
    """
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(available) < 2:
        return None, None
    half = len(available) // 2
    return set(available[:half]), set(available[half:])


async def _main(args: argparse.Namespace) -> int:
    direct: list[dict[str, Any]] = []
    through: list[dict[str, Any]] = []
    server_cpus, client_cpus = split_cpus() if args.pin else (None, None)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)  # the language server process inherits it
    with (
        tempfile.TemporaryDirectory() as tmp,
        llama_server(log_dir=Path(tmp), cpus=server_cpus) as server,
    ):
        lsp = ServerClient()
        await lsp.start(server.url, Path(tmp) / "data")
        try:
            await direct_run(server.url, -1, 8)  # warm both paths up once
            await lsp.run(-1, 8)
            for i in range(args.repeats):  # interleaved, so drift hits both equally
                # The same prompt twice: the second run reuses the server's prompt cache, so
                # the order alternates (time to first token is reported, not a target).
                if i % 2 == 0:
                    direct.append(await direct_run(server.url, i, args.tokens))
                    through.append(await lsp.run(i, args.tokens))
                else:
                    through.append(await lsp.run(i, args.tokens))
                    direct.append(await direct_run(server.url, i, args.tokens))
        finally:
            await lsp.stop()

    d_tps = statistics.median(r["tokens_per_s"] for r in direct)
    s_tps = statistics.median(r["tokens_per_s"] for r in through)
    # Time to first token of the runs that went first in their pair (cold prompt cache).
    d_ttft = statistics.median(r["ttft_s"] for i, r in enumerate(direct) if i % 2 == 0)
    s_ttft = statistics.median(
        [r["ttft_s"] for i, r in enumerate(through) if i % 2 == 1] or [through[0]["ttft_s"]]
    )
    ratios = {"tokens_per_s": s_tps / d_tps if d_tps else 0.0, "ttft": s_ttft / d_ttft}
    passed = {"tokens_per_s": ratios["tokens_per_s"] >= TARGETS["tokens_per_s_ratio_min"]}
    same_text = all(a["text"] == b["text"] for a, b in zip(direct, through, strict=True))
    results = {
        "server": "llama_cpp.server (llama-cpp-python) on 127.0.0.1, bundled SmolLM2-135M",
        "server_cpus": sorted(server_cpus) if server_cpus else "all",
        "reader_cpus": sorted(client_cpus) if client_cpus else "all",
        "max_tokens": args.tokens,
        "repeats": args.repeats,
        "direct_tokens_per_s": d_tps,
        "language_server_tokens_per_s": s_tps,
        "direct_ttft_ms": d_ttft * 1000,
        "language_server_ttft_ms": s_ttft * 1000,
        "pieces": [r["pieces"] for r in direct],
        "same_text": same_text,
        "samples": {
            "direct_tps": [r["tokens_per_s"] for r in direct],
            "language_server_tps": [r["tokens_per_s"] for r in through],
            "language_server_reported_tps": [r["server_tokens_per_s"] for r in through],
            "direct_ttft_s": [r["ttft_s"] for r in direct],
            "language_server_ttft_s": [r["ttft_s"] for r in through],
        },
    }
    print_table(
        f"bench.remote: streamed chat, {args.tokens} tokens max, greedy, median of "
        f"{args.repeats} (same answers: {same_text})",
        ["measure", "direct httpx", "language server", "ratio", "target", "ok"],
        [
            [
                "tokens/s after first",
                f"{d_tps:.1f}",
                f"{s_tps:.1f}",
                f"{ratios['tokens_per_s']:.3f}",
                ">= 0.95",
                passed["tokens_per_s"],
            ],
            [
                "first token ms (cold)",
                f"{d_ttft * 1000:.0f}",
                f"{s_ttft * 1000:.0f}",
                f"{ratios['ttft']:.3f}",
                "(reported)",
                "",
            ],
        ],
    )
    write_json(
        args.json, {"results": results, "ratios": ratios, "targets": TARGETS, "passed": passed}
    )
    return 0 if all(passed.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
