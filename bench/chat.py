"""bench.chat: streamed chat over LSP against the raw engine loop, and the chat store at scale.

(1) The real server process (``python -m lsp_server``, driven by a pygls client) answers
``openLlm/chat/send``; the client times the ``openLlm/chat/delta`` notifications it
receives. The anchor is bench.engine's bare llama.cpp loop, in this process, on the same
model, threads and context, fed the exact prompt the server rendered
(``openLlm/chat/renderPrompt``) and generating the same number of tokens, greedy. Runs
alternate (server, raw, engine, server, ...) so drift hits all; the in-process engine
(``LocalEngine``, no LSP) is shown for reference. Each server run uses a new
chat whose system prompt starts with the run number, so the server cannot reuse the
previous run's KV cache (the raw loop starts from an empty cache too).

(2) bench.chat_store: 10,000 chats and 200,000 messages in one workspace database; list,
search and open a chat, p95 each, and the database size.

    python -m bench.chat [--json FILE] [--tokens 128] [--repeats 5] [--skip-store]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.client import BenchChatClient
from bench.common import print_table, write_json

TARGETS = {
    "tokens_per_s_ratio_min": 0.90,
    "ttft_vs_prompt_ratio_max": 1.10,
    "ttft_slack_ms": 50.0,
    "store_p95_ms_max": 50.0,
}
QUESTION = (
    "Write the numbers from 1 to 300, separated by commas, and explain how a for loop in "
    "Python iterates over range(1, 301). Here is some code to look at:\n"
    + "for i in range(1, 301):\n    print(i, end=', ')\n"
    * 12
)
SETTINGS: dict[str, Any] = {
    "engine": {"contextLength": 2048, "threads": "auto"},
    "completion": {"enabled": False},
}


class ChatClient(BenchChatClient):
    """A real server on the local engine, timing chat deltas as they arrive."""

    def __init__(self) -> None:
        super().__init__("bench-chat")

    async def start(self, data_dir: Path) -> None:  # type: ignore[override]
        status = await super().start(data_dir, SETTINGS)
        if status["roles"]["chat"]["state"] != "ready":
            raise SystemExit(f"the server could not load the model: {status['message']}")

    async def run(self, index: int, n_gen: int) -> dict[str, Any]:
        """One streamed answer in a new chat; client-side timings and the server's stats."""
        chat = await self.call(
            "openLlm/chat/create",
            {"systemPrompt": f"Run {index}. You are a helpful assistant.", "title": "bench"},
        )
        shown = await self.call(
            "openLlm/chat/renderPrompt", {"chatId": chat["id"], "content": QUESTION}
        )
        self.arrivals.clear()
        start = time.perf_counter()
        result = await self.call(
            "openLlm/chat/send",
            {
                "chatId": chat["id"],
                "content": QUESTION,
                "generateTitle": False,
                "sampling": {"temperature": 0, "maxTokens": n_gen, "repeatPenalty": 1.0},
            },
        )
        end = time.perf_counter()
        pieces = [(t, d) for t, d in self.arrivals if d["messageId"] == result["message"]["id"]]
        text = [(t, d) for t, d in pieces if not d["done"] and d["delta"]]
        stats = result["stats"]
        first, last = text[0][0], text[-1][0]
        generated = int(stats["generatedTokens"])
        await self.call("openLlm/chat/delete", {"chatId": chat["id"]})
        return {
            "prompt_text": shown["text"],
            "add_bos": shown["addBos"],
            "prompt_tokens": int(stats["promptTokens"]),
            "reused_tokens": int(stats["reusedTokens"]),
            "generated_tokens": generated,
            "ttft_s": first - start,
            "tokens_per_s": (generated - 1) / (last - first) if last > first else 0.0,
            "deltas": len(text),
            "server_first_token_ms": stats["firstTokenMs"],
            "server_tokens_per_s": stats["tokensPerS"],
            "request_s": end - start,
            "stop_reason": stats["stopReason"],
        }


async def stream_bench(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Part (1): LSP chat stream vs the raw loop, interleaved; medians and ratios."""
    from bench.engine import engine_run, raw_run
    from lsp_server.config.engines import engine_configs
    from lsp_server.config.settings import Settings
    from lsp_server.engine.manager import EngineManager

    manager = EngineManager()
    manager.apply(engine_configs(Settings.model_validate(SETTINGS)))
    engine = await manager.engine("chat")
    client = ChatClient()
    await client.start(data_dir)
    lsp: list[dict[str, Any]] = []
    raw_prompt: list[float] = []
    raw_tps: list[float] = []
    eng_ttft: list[float] = []
    eng_tps: list[float] = []
    try:
        await client.run(0, 8)  # warm-up: first-use costs on both sides
        for i in range(1, args.repeats + 1):
            run = await client.run(i, args.tokens)
            tokens = engine.model.tokenize(run["prompt_text"], add_bos=run["add_bos"], special=True)
            if len(tokens) != run["prompt_tokens"]:
                raise SystemExit(
                    f"prompt mismatch: raw {len(tokens)} tokens, server {run['prompt_tokens']}"
                )
            n_gen = run["generated_tokens"]

            def raw(tk: list[int] = tokens, n: int = n_gen) -> tuple[float, float]:
                return raw_run(engine.context, tk, n)

            p, t = await asyncio.wrap_future(manager.worker.submit(0, raw))
            e_ttft, e_tps, _ = await engine_run(engine, tokens, n_gen)
            lsp.append(run)
            raw_prompt.append(p)
            raw_tps.append(t)
            eng_ttft.append(e_ttft)
            eng_tps.append(e_tps)
    finally:
        await client.stop()
        await manager.close()

    r_prompt = statistics.median(raw_prompt)
    r_tps = statistics.median(raw_tps)
    l_ttft = statistics.median(r["ttft_s"] for r in lsp)
    l_tps = statistics.median(r["tokens_per_s"] for r in lsp)
    e_ttft = statistics.median(eng_ttft)
    e_tps = statistics.median(eng_tps)
    limit_ms = TARGETS["ttft_vs_prompt_ratio_max"] * r_prompt * 1000 + TARGETS["ttft_slack_ms"]
    ratios = {"tokens_per_s": l_tps / r_tps, "ttft_vs_raw_prompt": l_ttft / r_prompt}
    passed = {
        "tokens_per_s": ratios["tokens_per_s"] >= TARGETS["tokens_per_s_ratio_min"],
        "ttft": l_ttft * 1000 <= limit_ms,
    }
    sample = lsp[0]
    print_table(
        f"bench.chat (1): {engine.info.name}, {sample['prompt_tokens']}-token prompt, "
        f"{sample['generated_tokens']} tokens, {engine.info.threads} thread(s), "
        f"median of {args.repeats}",
        ["measure", "raw loop", "engine", "LSP chat", "ratio", "target", "ok"],
        [
            [
                "tokens/s after first",
                f"{r_tps:.1f}",
                f"{e_tps:.1f}",
                f"{l_tps:.1f}",
                f"{ratios['tokens_per_s']:.3f}",
                ">= 0.90",
                passed["tokens_per_s"],
            ],
            [
                "prompt / first token ms",
                f"{r_prompt * 1000:.0f}",
                f"{e_ttft * 1000:.0f}",
                f"{l_ttft * 1000:.0f}",
                f"{ratios['ttft_vs_raw_prompt']:.3f}",
                f"<= {limit_ms:.0f} ms",
                passed["ttft"],
            ],
        ],
    )
    return {
        "results": {
            "model": engine.info.name,
            "threads": engine.info.threads,
            "prompt_tokens": sample["prompt_tokens"],
            "reused_tokens": [r["reused_tokens"] for r in lsp],
            "generated_tokens": [r["generated_tokens"] for r in lsp],
            "raw_prompt_ms": r_prompt * 1000,
            "raw_tokens_per_s": r_tps,
            "engine_ttft_ms": e_ttft * 1000,
            "engine_tokens_per_s": e_tps,
            "lsp_ttft_ms": l_ttft * 1000,
            "lsp_tokens_per_s": l_tps,
            "ttft_limit_ms": limit_ms,
            "samples": {
                "raw_prompt_s": raw_prompt,
                "raw_tps": raw_tps,
                "engine_ttft_s": eng_ttft,
                "engine_tps": eng_tps,
                "lsp": [{k: v for k, v in r.items() if k != "prompt_text"} for r in lsp],
            },
        },
        "ratios": ratios | {"lsp_vs_engine_tokens_per_s": l_tps / e_tps},
        "passed": passed,
    }


def store_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Part (2): bench.chat_store at scale (its own table), summarized."""
    from bench import chat_store

    with tempfile.TemporaryDirectory(prefix="bench-chat-store-") as tmp:
        out = Path(tmp) / "store.json"
        argv = ["--json", str(out), "--chats", str(args.chats), "--messages", str(args.messages)]
        code = chat_store.main(argv)
        if code != 0:
            raise SystemExit(f"bench.chat_store failed with exit code {code}")
        report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    results = report["results"]
    p95 = {name: results[name]["p95_ms"] for name in ("list", "search", "get")}
    limit = TARGETS["store_p95_ms_max"]
    passed = {f"{name}_p95": value < limit for name, value in p95.items()}
    print_table(
        f"bench.chat (2): {args.chats} chats, {args.messages} messages, "
        f"database {report['db_size_bytes'] / 1e6:.1f} MB",
        ["operation", "p50 ms", "p95 ms", "target", "ok"],
        [
            [name, f"{results[name]['p50_ms']:.2f}", f"{p95[name]:.2f}", f"< {limit:.0f}", ok]
            for name, ok in zip(p95, passed.values(), strict=True)
        ],
    )
    return {
        "results": report,
        "ratios": {f"{name}_p95": value / limit for name, value in p95.items()},
        "passed": passed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per streamed answer")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--skip-store", action="store_true", help="only part (1)")
    parser.add_argument("--skip-stream", action="store_true", help="only part (2)")
    args = parser.parse_args(argv)

    payload: dict[str, Any] = {"results": {}, "ratios": {}, "targets": TARGETS, "passed": {}}
    if not args.skip_stream:
        with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
            part = asyncio.run(stream_bench(args, Path(tmp)))
        payload["results"]["stream"] = part["results"]
        payload["ratios"].update(part["ratios"])
        payload["passed"].update(part["passed"])
    if not args.skip_store:
        part = store_bench(args)
        payload["results"]["store"] = part["results"]
        payload["ratios"].update(part["ratios"])
        payload["passed"].update(part["passed"])
    write_json(args.json, payload)
    return 0 if all(payload["passed"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
