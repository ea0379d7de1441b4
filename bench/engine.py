"""bench.engine: decode speed through the language server against llama.cpp's own peers.

For each model (Qwen2.5-Coder-0.5B and -1.5B, the pinned packages), at the same threads and
flash-attention setting, tokens/s of a greedy generation after its first token, median of
``--repeats`` runs interleaved so drift hits all columns alike:

* ``llama-bench`` tg128 (llama.cpp's own tool, built by ``python -m bench.peers.build``;
  the column is skipped, saying so, when it is not built);
* a raw low-level loop (``bench.common.RawModel``: ``llama_decode`` + the C greedy sampler);
* llama-cpp-python's high-level ``create_completion(stream=True)``, timed per streamed chunk;
* the language server (real process over stdio): ``openLlm/generate`` with a prompt, timed
  from the client side as ``openLlm/generateDelta`` notifications arrive.

Target: server ≥ 0.90 × llama-bench.

    python -m bench.engine [--models 0.5b,1.5b] [--tokens 128] [--repeats 3] [--threads N]
                           [--json FILE]

``raw_run`` and ``engine_run`` (the in-process engine against a raw loop on the engine's own
context) stay here for ``bench.chat``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import peers
from bench.client import BenchChatClient
from bench.common import RawModel, machine, print_table, resolve_model, write_json

TARGETS = {"server_over_llama_bench_min": 0.90}
PROMPT = (
    "# The first 1000 prime numbers, as a Python list.\n"
    "PRIMES = [\n    2, 3, 5, 7, 11, 13, 17, 19, 23, 29,\n    31, 37, 41, 43, 47, 53, 59, 61,"
)
"""A plain-text prompt any code model continues for far more than 128 tokens."""
N_CTX = 2048


def raw_run(ctx: Any, tokens: list[int], n_gen: int) -> tuple[float, float]:
    """Return (prompt seconds, generated tokens/s after the first) for the bare loop."""
    import llama_cpp as ll

    ctx.clear()
    batch = ctx.batch
    t0 = time.perf_counter()
    pos = 0
    step = ctx.n_batch
    for start in range(0, len(tokens), step):
        chunk = tokens[start : start + step]
        for i, tok in enumerate(chunk):
            batch.token[i] = tok
            batch.pos[i] = pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = start + i == len(tokens) - 1
        batch.n_tokens = len(chunk)
        assert ll.llama_decode(ctx.ptr, batch) == 0
        pos += len(chunk)
    t_prompt = time.perf_counter() - t0
    sampler = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    ll.llama_sampler_chain_add(sampler, ll.llama_sampler_init_greedy())
    t_first = 0.0
    for n in range(n_gen):
        tok = ll.llama_sampler_sample(sampler, ctx.ptr, -1)
        if n == 0:
            t_first = time.perf_counter()
        batch.token[0] = tok
        batch.pos[0] = pos
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = True
        batch.n_tokens = 1
        assert ll.llama_decode(ctx.ptr, batch) == 0
        pos += 1
    t_end = time.perf_counter()
    ll.llama_sampler_free(sampler)
    ctx.clear()
    return t_prompt, (n_gen - 1) / (t_end - t_first)


async def engine_run(engine: Any, tokens: list[int], n_gen: int) -> tuple[float, float, int]:
    """Return (time to first token s, tokens/s after the first, tokens) through the engine."""
    from lsp_server.engine.base import CancelToken, GenerationRequest, SamplingParams

    engine.context.clear()
    pieces: list[str] = []
    request = GenerationRequest(
        tokens=tokens, max_tokens=n_gen, sampling=SamplingParams(temperature=0)
    )
    result = await engine.generate(request, pieces.append, CancelToken())
    engine.context.clear()
    assert "".join(pieces) == result.text
    stats = result.stats
    return stats.first_token_ms / 1000, stats.tokens_per_s, stats.generated_tokens


def tokens_per_s(times: list[float], tokens: int) -> float:
    """Tokens/s after the first: ``tokens - 1`` intervals between the first and last arrival."""
    if tokens < 2 or len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (tokens - 1) / (times[-1] - times[0])


def llama_bench_run(tool: Path, model: Path, args: argparse.Namespace) -> float:
    """One ``llama-bench`` tg run (no prompt, ``--tokens`` generated); its tokens/s."""
    cmd = [str(tool), "-m", str(model), "-t", str(args.threads), "-p", "0"]
    cmd += ["-n", str(args.tokens), "-r", "1", "-fa", "on" if args.flash_attn else "off"]
    cmd += ["-o", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"llama-bench failed ({done.returncode}): {done.stderr[-500:]}")
    rows = [r for r in json.loads(done.stdout) if r.get("n_gen") == args.tokens]
    return float(rows[0]["avg_ts"])


def raw_loop_run(raw: RawModel, tokens: list[int], n_gen: int) -> tuple[float, int]:
    """The low-level loop: (tokens/s after the first, generated tokens)."""
    times: list[float] = []
    out = raw.generate(tokens, n_gen, on_token=lambda _t: times.append(time.perf_counter()))
    return tokens_per_s(times, len(times)), len(out)


def high_level_run(llm: Any, n_gen: int) -> tuple[float, int]:
    """``create_completion(stream=True)``, timed per text chunk: (tokens/s, chunks).

    With this ASCII prompt each generated token arrives as one chunk.
    """
    llm.reset()
    times: list[float] = []
    stream = llm.create_completion(
        PROMPT, max_tokens=n_gen, temperature=0.0, top_k=1, repeat_penalty=1.0, stream=True
    )
    for chunk in stream:
        if chunk["choices"][0]["text"]:  # the closing chunk carries only finish_reason
            times.append(time.perf_counter())
    return tokens_per_s(times, len(times)), len(times)


class EngineClient(BenchChatClient):
    """The bench LSP client, timing ``openLlm/generateDelta`` notifications."""

    def __init__(self) -> None:
        super().__init__("bench-engine")
        self.deltas: list[float] = []

        @self.client.feature("openLlm/generateDelta")
        def on_delta(ls: Any, params: Any) -> None:
            self.deltas.append(time.perf_counter())

    async def run(self, n_gen: int) -> tuple[float, int, dict[str, Any]]:
        """One streamed generation: (client-side tokens/s, generated tokens, server stats)."""
        self.deltas.clear()
        result = await self.call(
            "openLlm/generate",
            {
                "prompt": PROMPT,
                "maxTokens": n_gen,
                "temperature": 0,
                "topK": 1,
                "repeatPenalty": 1.0,
            },
        )
        stats = result["stats"]
        generated = int(stats["generatedTokens"])
        return tokens_per_s(self.deltas, generated), generated, stats


async def bench_model(size: str, args: argparse.Namespace) -> dict[str, Any]:
    """All columns for one model, interleaved over ``args.repeats`` runs."""
    import llama_cpp

    path = resolve_model(size)
    tool = peers.find("llama-bench")
    if tool is None:
        print(peers.missing_message("llama-bench"))
    raw = RawModel(path, n_ctx=N_CTX, threads=args.threads, flash_attn=args.flash_attn)
    prompt_tokens = [*raw.add_bos(), *raw.tokenize(PROMPT)]
    llm = llama_cpp.Llama(
        str(path),
        n_ctx=N_CTX,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        flash_attn=args.flash_attn,
        verbose=False,
    )
    client = EngineClient()
    settings = {
        "model": str(path),
        "engine": {
            "threads": args.threads,
            "contextLength": N_CTX,
            "flashAttention": args.flash_attn,
        },
        "completion": {"enabled": False},
    }
    status = await client.start(Path(tempfile.mkdtemp(prefix="bench-engine-")), settings)
    if status["roles"]["chat"]["state"] != "ready":
        raise SystemExit(f"the server could not load {path}: {status.get('message')}")
    samples: dict[str, list[float]] = {"server": [], "high_level": [], "raw_loop": []}
    samples["llama_bench"] = []
    generated: dict[str, int] = {}
    try:
        await client.run(8)  # first-use costs (page faults of the mapped weights) on each side
        raw_loop_run(raw, prompt_tokens, 8)
        high_level_run(llm, 8)
        for _ in range(args.repeats):
            tps, generated["server"], _stats = await client.run(args.tokens)
            samples["server"].append(tps)
            tps, generated["high_level"] = high_level_run(llm, args.tokens)
            samples["high_level"].append(tps)
            tps, generated["raw_loop"] = raw_loop_run(raw, prompt_tokens, args.tokens)
            samples["raw_loop"].append(tps)
            if tool is not None:
                samples["llama_bench"].append(llama_bench_run(tool, path, args))
                generated["llama_bench"] = args.tokens
    finally:
        await client.stop()
        raw.close()
        del llm
    medians = {k: statistics.median(v) if v else None for k, v in samples.items()}
    server = medians["server"] or 0.0
    ratios = {
        f"server_over_{k}": server / v if v else None for k, v in medians.items() if k != "server"
    }
    bench_ratio = ratios["server_over_llama_bench"]
    passed = {
        "server_over_llama_bench": None
        if bench_ratio is None
        else bench_ratio >= TARGETS["server_over_llama_bench_min"]
    }
    return {
        "model": path.name,
        "prompt_tokens": len(prompt_tokens),
        "generated_tokens": generated,
        "tokens_per_s": medians,
        "samples": samples,
        "ratios": ratios,
        "passed": passed,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure every model; print one table; exit 1 when a measured target is missed."""
    from lsp_server.hardware.probe import recommended_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write results here")
    parser.add_argument(
        "--models", default="0.5b,1.5b", help="comma-separated: 0.5b, 1.5b or GGUF paths"
    )
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=recommended_threads())
    parser.add_argument(
        "--no-flash-attn", dest="flash_attn", action="store_false", help="flash attention off"
    )
    args = parser.parse_args(argv)
    results = {}
    for size in [s.strip() for s in args.models.split(",") if s.strip()]:
        results[size] = asyncio.run(bench_model(size, args))

    def cell(value: float | None, fmt: str = "{:.1f}") -> str:
        return "skipped" if value is None else fmt.format(value)

    rows = []
    for r in results.values():
        tps = r["tokens_per_s"]
        ok = r["passed"]["server_over_llama_bench"]
        rows.append(
            [
                r["model"],
                cell(tps["llama_bench"]),
                cell(tps["raw_loop"]),
                cell(tps["high_level"]),
                cell(tps["server"]),
                cell(r["ratios"]["server_over_llama_bench"], "{:.3f}"),
                f">= {TARGETS['server_over_llama_bench_min']}",
                "skipped" if ok is None else ok,
            ]
        )
    print_table(
        f"bench.engine: decode tokens/s after the first token, {args.tokens} tokens, "
        f"{args.threads} thread(s), flash attention {'on' if args.flash_attn else 'off'}, "
        f"median of {args.repeats}",
        [
            "model",
            f"llama-bench tg{args.tokens}",
            "raw loop",
            "create_completion",
            "server (client side)",
            "server/llama-bench",
            "target",
            "ok",
        ],
        rows,
    )
    write_json(
        args.json,
        {
            "benchmark": "engine",
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "machine": machine(),
            "results": results,
            "targets": TARGETS,
            "passed": {size: r["passed"] for size, r in results.items()},
        },
    )
    missed = [r for r in results.values() if r["passed"]["server_over_llama_bench"] is False]
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
