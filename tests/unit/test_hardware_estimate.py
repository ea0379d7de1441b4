"""Memory estimates: the KV formula, and estimate vs. measured RSS on the bundled models."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from lsp_server.core.errors import ModelNotFound
from lsp_server.hardware.estimate import (
    KV_TYPE_BYTES,
    ModelShape,
    estimate_from_shape,
    estimate_memory,
    kv_cache_bytes,
    weight_split,
)
from lsp_server.models.bundled import bundled_gemma_path, bundled_smollm2_path
from lsp_server.models.gguf import read_gguf

MIB = 1 << 20
MODELS_CACHE = Path(tempfile.gettempdir()) / "open-llm-lsp-test-models"


def _model(name: str) -> Path:
    try:
        if name == "smollm2":
            return bundled_smollm2_path()
        return bundled_gemma_path(MODELS_CACHE)
    except ModelNotFound as exc:
        pytest.skip(str(exc))


def test_kv_formula_smollm2() -> None:
    g = read_gguf(_model("smollm2"))
    # 30 layers x 3 KV heads x (64 + 64) x 2 bytes per token
    assert kv_cache_bytes(g, 4096) == 30 * 4096 * 3 * 128 * 2 == 90 * MIB
    assert kv_cache_bytes(g, 4096, "q8_0") == int(30 * 4096 * 3 * 128 * 34 / 32)
    assert kv_cache_bytes(g, 4096, "q4_0") == int(30 * 4096 * 3 * 128 * 18 / 32)
    assert kv_cache_bytes(g, 4096, "f32") == 180 * MIB


def test_kv_sliding_window_counted_full() -> None:
    g = read_gguf(_model("gemma"))
    assert g.sliding_window == 512
    # swa_full: every one of the 18 layers holds the whole context (1 KV head, 256+256).
    assert kv_cache_bytes(g, 16384) == 18 * 16384 * 512 * 2 == 288 * MIB


def test_estimate_parts() -> None:
    path = _model("smollm2")
    g = read_gguf(path)
    est = estimate_memory(g, n_ctx=4096)
    assert est.weights == path.stat().st_size
    assert est.kv == 90 * MIB
    assert 0 < est.compute < 32 * MIB
    assert 0 < est.overhead < 32 * MIB
    assert est.total == est.weights + est.kv + est.compute + est.overhead
    d = est.to_dict()
    assert d["total"] == est.total and d["contextLength"] == 4096 and d["kvCacheType"] == "f16"
    assert estimate_memory(g).n_ctx == 8192  # defaults to the trained context
    assert estimate_memory(g, n_ctx=4096, kv_cache_type="q8_0").kv < est.kv


def test_unknown_kv_type() -> None:
    shape = ModelShape(2, 64, 100, 256)
    with pytest.raises(ValueError, match="KV cache type"):
        estimate_from_shape(shape, 1000, n_ctx=16, kv_cache_type="q3_k")
    assert set(KV_TYPE_BYTES) >= {"f16", "q8_0", "q4_0", "f32"}


def test_weight_split_sums() -> None:
    g = read_gguf(_model("smollm2"))
    split = weight_split(g)
    assert split.total == g.tensor_bytes
    assert split.per_layer * g.block_count + split.token_embd <= split.total  # type: ignore[operator]
    assert split.output >= split.token_embd  # tied embeddings: output head copies them


def test_guess_shape() -> None:
    shape = ModelShape.guess(7.2e9)
    assert (shape.n_layers, shape.n_embd) == (32, 4096)
    assert shape.guessed
    assert ModelShape.guess(70e9).n_layers == 80


_MEASURE = textwrap.dedent(
    """
    import ctypes, json, sys
    import llama_cpp as ll

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    @ll.llama_log_callback
    def _quiet(level, text, user):
        pass

    ll.llama_log_set(_quiet, ctypes.c_void_p(0))
    ll.llama_backend_init()
    path, n_ctx = sys.argv[1], int(sys.argv[2])
    before = rss()
    mp = ll.llama_model_default_params()
    mp.n_gpu_layers = 0
    mp.use_mmap = True
    model = ll.llama_model_load_from_file(path.encode(), mp)
    assert model
    cp = ll.llama_context_default_params()
    cp.n_ctx = n_ctx
    cp.n_batch = cp.n_ubatch = 256
    cp.n_seq_max = 1
    cp.n_threads = cp.n_threads_batch = 1
    for name, value in (("flash_attn_type", -1), ("swa_full", True), ("no_perf", True)):
        if hasattr(cp, name):
            setattr(cp, name, value)
    ctx = ll.llama_init_from_model(model, cp)
    assert ctx
    vocab = ll.llama_model_get_vocab(model)
    text = b"def fibonacci(n):\\n    return n if n < 2 else fibonacci(n - 1)\\n" * 8
    toks = (ll.llama_token * 512)()
    n = min(ll.llama_tokenize(vocab, text, len(text), toks, 512, True, False), 250)
    assert ll.llama_decode(ctx, ll.llama_batch_get_one(toks, n)) == 0
    one = (ll.llama_token * 1)(toks[0])
    for _ in range(3):
        assert ll.llama_decode(ctx, ll.llama_batch_get_one(one, 1)) == 0
    print(json.dumps({"delta": rss() - before}))
    """
)


@pytest.mark.model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama_cpp")
@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_estimate_within_15_percent_of_measured_rss(name: str) -> None:
    """Load the model with llama.cpp (CPU, mmap, n_ctx 4096), decode, compare RSS growth.

    Runs in a child process so that this test process's allocator history and other
    models do not blur the measurement. With mmap the weights count as resident once
    touched, which loading and the decode do.
    """
    path = _model(name)
    n_ctx = 4096
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(n_ctx)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])["delta"]
    estimate = estimate_memory(read_gguf(path), n_ctx=n_ctx).total
    ratio = estimate / measured
    assert 0.85 <= ratio <= 1.15, (
        f"{name}: estimated {estimate / MIB:.1f} MiB, measured {measured / MIB:.1f} MiB"
    )
