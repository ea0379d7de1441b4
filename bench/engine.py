"""bench.engine: the engine's streamed generation against a raw llama.cpp loop.

Both run in this process on the same model, context, prompt and threads. The
anchor is the bare low-level loop (``llama_decode`` + the C greedy sampler, no
detokenization, no Python callbacks). The engine run goes through
:class:`~lsp_server.engine.local.LocalEngine` (engine thread, incremental
detokenization, stop matching, deltas delivered to an asyncio loop).

    python -m bench.engine [--json FILE] [--tokens 128] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.common import print_table, write_json

TARGETS = {"tokens_per_s_ratio_min": 0.90, "ttft_vs_prompt_ratio_max": 1.10, "ttft_slack_ms": 50.0}
PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWrite the numbers from 1 to 300, separated by commas, and explain "
    "how a for loop in Python iterates over range(1, 301). Here is some code to look at:\n"
    + "for i in range(1, 301):\n    print(i, end=', ')\n" * 12
    + "<|im_end|>\n<|im_start|>assistant\n"
)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0 = the server's auto choice")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    from lsp_server.config.settings import Settings
    from lsp_server.engine.manager import EngineManager

    settings = Settings.model_validate(
        {"engine": {"contextLength": 2048, "threads": args.threads or "auto"}}
    )
    manager = EngineManager()
    manager.apply(settings)
    engine = await manager.engine("chat")
    tokens = engine.model.tokenize(PROMPT, add_bos=True, special=True)
    raw_prompt, raw_tps, eng_ttft, eng_tps = [], [], [], []
    generated = 0
    # Unmeasured warm-up: the first pass pays the page faults of the freshly mapped weights.
    await asyncio.wrap_future(
        manager.worker.submit(0, lambda: raw_run(engine.context, tokens, args.tokens))
    )
    for _ in range(args.repeats):  # interleaved, so drift hits both equally
        p, t = await asyncio.wrap_future(
            manager.worker.submit(0, lambda: raw_run(engine.context, tokens, args.tokens))
        )
        raw_prompt.append(p)
        raw_tps.append(t)
        ttft, tps, generated = await engine_run(engine, tokens, args.tokens)
        eng_ttft.append(ttft)
        eng_tps.append(tps)
    await manager.close()

    r_prompt = statistics.median(raw_prompt)
    r_tps = statistics.median(raw_tps)
    e_ttft = statistics.median(eng_ttft)
    e_tps = statistics.median(eng_tps)
    ratios = {
        "tokens_per_s": e_tps / r_tps,
        "ttft_vs_raw_prompt": e_ttft / r_prompt,
    }
    limit_ms = (TARGETS["ttft_vs_prompt_ratio_max"] * r_prompt) * 1000 + TARGETS["ttft_slack_ms"]
    passed = {
        "tokens_per_s": ratios["tokens_per_s"] >= TARGETS["tokens_per_s_ratio_min"],
        "ttft": e_ttft * 1000 <= limit_ms,
    }
    results = {
        "model": engine.info.name,
        "threads": engine.info.threads,
        "prompt_tokens": len(tokens),
        "generated_tokens": generated,
        "raw_prompt_ms": r_prompt * 1000,
        "raw_tokens_per_s": r_tps,
        "engine_ttft_ms": e_ttft * 1000,
        "engine_tokens_per_s": e_tps,
        "ttft_limit_ms": limit_ms,
        "samples": {
            "raw_prompt_s": raw_prompt,
            "raw_tps": raw_tps,
            "engine_ttft_s": eng_ttft,
            "engine_tps": eng_tps,
        },
    }
    print_table(
        f"bench.engine: {engine.info.name}, {len(tokens)}-token prompt, "
        f"{args.tokens} tokens, {engine.info.threads} thread(s), median of {args.repeats}",
        ["measure", "raw loop", "engine", "ratio", "target", "ok"],
        [
            [
                "tokens/s after first",
                f"{r_tps:.1f}",
                f"{e_tps:.1f}",
                f"{ratios['tokens_per_s']:.3f}",
                ">= 0.90",
                passed["tokens_per_s"],
            ],
            [
                "prompt / first token ms",
                f"{r_prompt * 1000:.0f}",
                f"{e_ttft * 1000:.0f}",
                f"{ratios['ttft_vs_raw_prompt']:.3f}",
                f"<= {limit_ms:.0f} ms",
                passed["ttft"],
            ],
        ],
    )
    write_json(
        args.json, {"results": results, "ratios": ratios, "targets": TARGETS, "passed": passed}
    )
    return 0 if all(passed.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
