"""Estimate the memory a GGUF model needs under llama.cpp: weights, KV cache, compute.

The estimate is *resident* memory (what ``VmRSS`` shows once the model has run), in
bytes, for the CPU backend with the engine's settings (mmap, ``n_ubatch`` = batch
size, one sequence, ``swa_full``):

``weights``
    The whole file: llama.cpp maps it and touches every page while loading.
``kv``
    ``n_ctx × Σ_layers n_kv_heads × (key_length + value_length) × bytes/element`` of
    the cache type (f16 2, q8_0 34/32, q4_0 18/32, f32 4). Sliding-window layers are
    counted at full size because the engine sets ``swa_full`` (so a cached prefix can
    be reused); without it those layers would only hold the window.
``overhead``
    The loaded vocabulary and tokenizer tables: about 170 bytes per token and 190
    bytes per BPE merge (measured: 16.6 MiB for SmolLM2's 49k tokens + 49k merges,
    41.5 MiB for Gemma 3's 262k tokens).
``compute``
    What a decode touches of the compute buffer: 8 MiB + activations
    (``n_batch × n_embd × 4 bytes × 8``) + four copies of the logits row. llama.cpp
    *reserves* ``n_vocab × n_batch × 4`` bytes for the worst case (all logits), but on
    the CPU untouched pages are never resident, so that reservation only matters on a
    GPU (see :func:`gpu_compute_bytes`).

Calibration (llama-cpp-python 0.3.36, CPU, n_batch 256, flash attention auto, f16 KV,
RSS delta after load + a 250-token prompt + 3 tokens): SmolLM2-135M Q4_1 measured
210 MiB at n_ctx 4096 and 481 MiB at 16384 (estimate 214 / 484); Gemma 3 270M
Q4_K_M measured 378 / 601 MiB (estimate 373 / 589). CPU weight repacking (e.g.
12.7 MiB of Q4_K tensors for Gemma) is not modelled; it stays within the error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from lsp_server.models.gguf import ArraySummary, GgufFile

__all__ = [
    "KV_TYPE_BYTES",
    "MemoryEstimate",
    "ModelShape",
    "WeightSplit",
    "estimate_from_shape",
    "estimate_memory",
    "gpu_compute_bytes",
    "kv_cache_bytes",
    "weight_split",
]

log = logging.getLogger(__name__)

MIB = 1 << 20
#: Bytes per KV-cache element for each ``engine.kvCacheType``.
KV_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}
VOCAB_BYTES_PER_TOKEN = 170
VOCAB_BYTES_PER_MERGE = 190
COMPUTE_BASE_BYTES = 8 * MIB
ACTIVATION_FLOATS_PER_EMBD = 8
LOGITS_COPIES = 4
DEFAULT_N_BATCH = 256
DEFAULT_N_CTX = 4096


@dataclass(frozen=True)
class ModelShape:
    """The architecture numbers the estimate needs (from a GGUF header or a guess)."""

    n_layers: int
    n_embd: int
    n_vocab: int
    kv_elements_per_token: int  # Σ over layers of n_kv_heads × (key_length + value_length)
    n_merges: int = 0
    context_length: int | None = None
    guessed: bool = False

    @classmethod
    def from_gguf(cls, g: GgufFile) -> ModelShape:
        """Read the shape from a parsed header (missing numbers become 0)."""
        n_layers = g.block_count or 0
        per_layer = g.head_count_kv_per_layer or ()
        k, v = g.key_length or 0, g.value_length or 0
        kv = sum(per_layer) * (k + v)
        merges = g.metadata.get("tokenizer.ggml.merges")
        n_merges = len(merges) if isinstance(merges, (list, ArraySummary)) else 0
        vocab = g.vocab_size or _int(g.arch_get("vocab_size")) or 0
        return cls(
            n_layers=n_layers,
            n_embd=g.embedding_length or 0,
            n_vocab=vocab,
            kv_elements_per_token=kv,
            n_merges=n_merges,
            context_length=g.context_length,
        )

    @classmethod
    def guess(cls, parameter_count: float, *, n_vocab: int = 128_256) -> ModelShape:
        """A typical dense GQA transformer shape for a parameter count (no header at hand)."""
        # (params, layers, embd, kv heads, head dim) of common open models.
        table = [
            (0.5e9, 24, 896, 2, 64),
            (1.5e9, 28, 1536, 2, 128),
            (3e9, 36, 2048, 2, 128),
            (7.5e9, 32, 4096, 8, 128),
            (14e9, 48, 5120, 8, 128),
            (27e9, 62, 5376, 16, 128),
            (32e9, 64, 5120, 8, 128),
            (70e9, 80, 8192, 8, 128),
            (120e9, 88, 12288, 8, 128),
        ]
        row = min(table, key=lambda r: abs(r[0] - parameter_count) / r[0])
        _, layers, embd, kv_heads, head_dim = row
        return cls(layers, embd, n_vocab, layers * kv_heads * 2 * head_dim, guessed=True)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class WeightSplit:
    """Where the weights go when layers are offloaded: per layer, embeddings, output head."""

    per_layer: int  # average bytes of one repeating block
    token_embd: int  # stays in system memory (looked up on the CPU)
    output: int  # output head (a copy of token_embd when tied): on the GPU with every layer
    total: int


_BLK = re.compile(r"^blk\.(\d+)\.")


def weight_split(g: GgufFile) -> WeightSplit:
    """Split a header's tensor bytes into layers, token embeddings and output head."""
    layers: dict[int, int] = {}
    embd = out = 0
    tied = not any(t.name == "output.weight" for t in g.tensors)
    for t in g.tensors:
        m = _BLK.match(t.name)
        if m:
            layers[int(m.group(1))] = layers.get(int(m.group(1)), 0) + t.n_bytes
        elif t.name.startswith("token_embd"):
            embd += t.n_bytes
        else:
            out += t.n_bytes
    n = len(layers) or 1
    total = g.tensor_bytes
    if not layers:
        return WeightSplit(0, embd, total - embd, total)
    if tied:  # the output head reuses token_embd: llama.cpp puts a copy on the GPU
        out += embd
    return WeightSplit(sum(layers.values()) // n, embd, out, total)


def guess_weight_split(shape: ModelShape, total: int, bits_per_weight: float) -> WeightSplit:
    """Split ``total`` file bytes for a guessed shape (untied embeddings assumed)."""
    embd = int(shape.n_vocab * shape.n_embd * bits_per_weight / 8)
    embd = min(embd, total // 4)
    out = embd
    rest = max(0, total - embd - out)
    return WeightSplit(rest // max(1, shape.n_layers), embd, out, total)


@dataclass(frozen=True)
class MemoryEstimate:
    """Resident memory needed to run a model with one context, in bytes."""

    weights: int
    kv: int
    compute: int
    overhead: int
    n_ctx: int
    kv_cache_type: str

    @property
    def total(self) -> int:
        """Sum of all parts."""
        return self.weights + self.kv + self.compute + self.overhead

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "weights": self.weights,
            "kv": self.kv,
            "compute": self.compute,
            "overhead": self.overhead,
            "total": self.total,
            "contextLength": self.n_ctx,
            "kvCacheType": self.kv_cache_type,
        }


def _kv_bytes_per_element(kv_cache_type: str) -> float:
    try:
        return KV_TYPE_BYTES[kv_cache_type.lower()]
    except KeyError:
        raise ValueError(
            f"unknown KV cache type {kv_cache_type!r}; use one of {', '.join(KV_TYPE_BYTES)}"
        ) from None


def kv_cache_bytes(shape: ModelShape | GgufFile, n_ctx: int, kv_cache_type: str = "f16") -> int:
    """KV cache bytes for ``n_ctx`` tokens (sliding-window layers at full size).

    :param shape: a :class:`ModelShape` or a parsed header.
    :param n_ctx: context length in tokens.
    :param kv_cache_type: ``f16``, ``q8_0``, ``q4_0``, ``f32``...
    """
    if isinstance(shape, GgufFile):
        shape = ModelShape.from_gguf(shape)
    return int(n_ctx * shape.kv_elements_per_token * _kv_bytes_per_element(kv_cache_type))


def overhead_bytes(shape: ModelShape) -> int:
    """Tokenizer tables llama.cpp builds when loading (resident, on the CPU)."""
    return shape.n_vocab * VOCAB_BYTES_PER_TOKEN + shape.n_merges * VOCAB_BYTES_PER_MERGE


def cpu_compute_bytes(shape: ModelShape, n_batch: int = DEFAULT_N_BATCH) -> int:
    """Resident part of the CPU compute buffer during decoding."""
    activations = n_batch * shape.n_embd * 4 * ACTIVATION_FLOATS_PER_EMBD
    return COMPUTE_BASE_BYTES + activations + shape.n_vocab * 4 * LOGITS_COPIES


def gpu_compute_bytes(shape: ModelShape, n_batch: int = DEFAULT_N_BATCH) -> int:
    """Compute buffer a GPU backend allocates up front (the worst-case reservation)."""
    return shape.n_vocab * n_batch * 4 + n_batch * shape.n_embd * 4 * 16 + 64 * MIB


def estimate_from_shape(
    shape: ModelShape,
    weights: int,
    *,
    n_ctx: int,
    kv_cache_type: str = "f16",
    n_batch: int = DEFAULT_N_BATCH,
) -> MemoryEstimate:
    """Estimate resident memory from a shape and a weights size.

    :param shape: model architecture numbers.
    :param weights: bytes of the model file(s).
    :param n_ctx: context length in tokens.
    :param kv_cache_type: KV cache element type.
    :param n_batch: the engine's batch (= micro-batch) size.
    """
    return MemoryEstimate(
        weights=weights,
        kv=kv_cache_bytes(shape, n_ctx, kv_cache_type),
        compute=cpu_compute_bytes(shape, n_batch),
        overhead=overhead_bytes(shape),
        n_ctx=n_ctx,
        kv_cache_type=kv_cache_type,
    )


def estimate_memory(
    gguf: GgufFile,
    *,
    n_ctx: int | None = None,
    kv_cache_type: str = "f16",
    n_batch: int = DEFAULT_N_BATCH,
) -> MemoryEstimate:
    """Estimate the resident memory to run ``gguf`` on the CPU with one context.

    :param gguf: parsed header (see :func:`lsp_server.models.gguf.read_gguf`).
    :param n_ctx: context length; defaults to the model's trained length, else 4096.
    :param kv_cache_type: ``f16`` (default), ``q8_0``, ``q4_0`` or ``f32``.
    :param n_batch: the engine's batch size (also its micro-batch size).
    """
    ctx = n_ctx or gguf.context_length or DEFAULT_N_CTX
    weights = gguf.file_size if gguf.file_size is not None else gguf.expected_size
    shape = ModelShape.from_gguf(gguf)
    if shape.kv_elements_per_token == 0:
        log.info("%s: no attention KV shape in the header; KV cache counted as 0", gguf.path)
    return estimate_from_shape(
        shape, weights, n_ctx=ctx, kv_cache_type=kv_cache_type, n_batch=n_batch
    )
