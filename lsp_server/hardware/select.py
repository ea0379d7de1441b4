"""Which model files fit this machine, where they run, and which one to pick.

:func:`fit` is pure: it takes a :class:`~lsp_server.hardware.probe.HardwareReport`,
candidate files (name, size, and a header-derived or guessed shape) and options, and
classifies each file as *Full GPU*, *Partial GPU* (n layers offloaded), *CPU* or
*Won't fit*, with the largest context up to the desired one that fits. It then picks
one file:

1. Only files that fit with at least ``min_context`` tokens, and of at least 3 bits
   (``Q3_K_S``, ``IQ3_XXS``... — 2-bit and 1-bit files only with ``force_low_bits``).
2. If some file of 4 bits or more runs fully on the GPU, only full-GPU files
   compete (partial offload is several times slower).
3. The highest quality wins, capped at ``max_quality`` (``Q8_0``: F16/BF16/F32 are
   barely better and twice as slow); on CPU-only machines with ``few_cores`` cores or
   fewer the cap is ``cpu_few_cores_max_quality`` (``Q4_K_M``): bigger files are too slow.
   A QAT (quantization-aware trained) file ranks like ``Q6_K``.
4. Ties: better placement, larger context, smaller file.

Memory model (see :mod:`lsp_server.hardware.estimate`): with ``k`` of ``L`` layers on
the GPU, VRAM holds ``k`` layers, their KV cache, the output head when ``k == L``, the
GPU compute buffer and a runtime overhead; RAM holds the other layers, their KV cache,
token embeddings, tokenizer tables and the CPU compute buffer. On Apple Silicon the
two share one pool (and the GPU may use at most ~75 % of it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from lsp_server.hardware.estimate import (
    ModelShape,
    WeightSplit,
    cpu_compute_bytes,
    gpu_compute_bytes,
    guess_weight_split,
    kv_cache_bytes,
    overhead_bytes,
    weight_split,
)
from lsp_server.hardware.probe import HardwareReport
from lsp_server.models.gguf import GgufFile
from lsp_server.models.quant import QUANTS, bits_per_weight, is_qat, parse_quant, quality_rank

__all__ = [
    "PLACEMENT_LABELS",
    "CandidateFile",
    "FitOptions",
    "FitResult",
    "FitRow",
    "Placement",
    "fit",
    "nominal_bits",
]

log = logging.getLogger(__name__)

GIB = 1 << 30
MIB = 1 << 20
Placement = Literal["gpu", "partial", "cpu", "none"]
PLACEMENT_LABELS: dict[str, str] = {
    "gpu": "Full GPU",
    "partial": "Partial GPU",
    "cpu": "CPU",
    "none": "Won't fit",
}
_PLACEMENT_ORDER = {"gpu": 3, "partial": 2, "cpu": 1, "none": 0}


def nominal_bits(quant: str | None) -> int | None:
    """The bit width in a quantization's name: ``Q2_K`` → 2, ``IQ3_XXS`` → 3, ``F16`` → 16."""
    if not quant:
        return None
    if quant in ("F16", "BF16"):
        return 16
    if quant == "F32":
        return 32
    if quant == "MXFP4":
        return 4
    m = re.match(r"^(?:I?Q|TQ)(\d)", quant)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class CandidateFile:
    """A model file (or all shards of one) to classify."""

    name: str
    size: int
    quant: str | None = None  # parsed from ``name`` when None
    shape: ModelShape | None = None  # from the GGUF header when known
    split: WeightSplit | None = None  # from the GGUF header when known
    parameter_count: int | None = None  # used to guess the shape without a header
    qat: bool | None = None  # parsed from ``name`` when None

    @classmethod
    def from_gguf(cls, g: GgufFile, name: str | None = None) -> CandidateFile:
        """Build a candidate from a parsed header (exact shape and layer sizes)."""
        label = name or (g.path.rsplit("/", 1)[-1] if g.path else g.name or "model")
        size = g.file_size if g.file_size is not None else g.expected_size
        quant = parse_quant(label) or g.quantization
        return cls(
            name=label,
            size=size,
            quant=quant,
            shape=ModelShape.from_gguf(g),
            split=weight_split(g),
            parameter_count=g.parameter_count,
        )

    @property
    def quant_name(self) -> str | None:
        """The quantization (given or parsed from the name)."""
        return self.quant or parse_quant(self.name)

    @property
    def is_qat(self) -> bool:
        """Whether the file is a quantization-aware-trained release."""
        return self.qat if self.qat is not None else is_qat(self.name)


@dataclass(frozen=True)
class FitOptions:
    """Knobs of :func:`fit` (sizes in bytes)."""

    desired_context: int = 8192
    min_context: int = 4096  # clipped to desired_context
    ram_headroom: int = 1 * GIB  # left free for the OS, the editor and other programs
    vram_headroom: int = 512 * MIB
    gpu_runtime_overhead: int = 400 * MIB  # CUDA/ROCm/Metal context and scratch
    kv_cache_type: str = "f16"
    n_batch: int = 256
    force_low_bits: bool = False
    max_quality: str | None = "Q8_0"
    few_cores: int = 4
    cpu_few_cores_max_quality: str | None = "Q4_K_M"
    allow_gpu: bool = True


@dataclass(frozen=True)
class FitRow:
    """One file's verdict in the explanation table."""

    file: str
    quant: str | None
    size: int
    bits_per_weight: float | None
    placement: Placement
    gpu_layers: int
    n_layers: int
    context: int  # 0 when it does not fit
    ram_bytes: int
    vram_bytes: int
    reason: str
    chosen: bool = False

    @property
    def label(self) -> str:
        """Human placement label (``"Partial GPU (20/32 layers)"``)."""
        if self.placement == "partial":
            return f"Partial GPU ({self.gpu_layers}/{self.n_layers} layers)"
        return PLACEMENT_LABELS[self.placement]

    @property
    def fits(self) -> bool:
        """Whether the file can run at all."""
        return self.placement != "none"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "file": self.file,
            "quant": self.quant,
            "size": self.size,
            "bitsPerWeight": self.bits_per_weight,
            "placement": self.placement,
            "label": self.label,
            "gpuLayers": self.gpu_layers,
            "nLayers": self.n_layers,
            "context": self.context,
            "ramBytes": self.ram_bytes,
            "vramBytes": self.vram_bytes,
            "reason": self.reason,
            "chosen": self.chosen,
        }


@dataclass(frozen=True)
class FitResult:
    """All rows (input order), the chosen one, and a one-line verdict."""

    rows: tuple[FitRow, ...]
    choice: FitRow | None
    message: str
    ram_budget: int | None
    vram_budget: int
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "rows": [r.to_dict() for r in self.rows],
            "choice": self.choice.to_dict() if self.choice else None,
            "message": self.message,
            "ramBudget": self.ram_budget,
            "vramBudget": self.vram_budget,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Budget:
    ram: int
    vram: int  # 0 without a usable GPU
    unified: bool
    gpu: bool


def _budget(hw: HardwareReport, opts: FitOptions, notes: list[str]) -> _Budget:
    avail = hw.available_memory
    if avail is None and hw.total_memory is not None:
        avail = int(hw.total_memory * 0.8)
        notes.append("available memory unknown: assuming 80 % of total")
    if avail is None:
        notes.append("memory size unknown: nothing can be checked")
        avail = 0
    ram = max(0, avail - opts.ram_headroom)
    gpu = bool(hw.gpus) and hw.gpu_offload and opts.allow_gpu
    if hw.gpus and not hw.gpu_offload:
        notes.append("GPU found but this llama-cpp-python build cannot offload: CPU only")
    vram = 0
    if gpu:
        vram = max(0, hw.gpu_free_memory - opts.vram_headroom - opts.gpu_runtime_overhead)
        if hw.unified_memory:
            vram = min(vram, ram)
        if len(hw.gpus) > 1:
            notes.append(f"{len(hw.gpus)} GPUs: layers are split across them")
    return _Budget(ram, vram, hw.unified_memory and gpu, gpu)


def _contexts(opts: FitOptions, trained: int | None) -> list[int]:
    top = opts.desired_context
    if trained:
        top = min(top, trained)
    low = min(opts.min_context, top)
    out = [top]
    n = top
    while n // 2 >= low and n // 2 >= 256:
        n //= 2
        out.append(n)
    if out[-1] > low:
        out.append(low)
    return out


@dataclass(frozen=True)
class _Need:
    ram: int
    vram: int


def _need(
    k: int,
    n_ctx: int,
    shape: ModelShape,
    split: WeightSplit,
    opts: FitOptions,
) -> _Need:
    layers = max(1, shape.n_layers)
    kv_layer = kv_cache_bytes(shape, n_ctx, opts.kv_cache_type) / layers
    per_layer = split.per_layer + kv_layer
    vram = 0.0
    if k > 0:
        vram = k * per_layer + gpu_compute_bytes(shape, opts.n_batch)
        if k >= layers:
            vram += split.output
    ram = (
        (layers - k) * per_layer
        + split.token_embd
        + (split.output if k < layers else 0)
        + overhead_bytes(shape)
        + cpu_compute_bytes(shape, opts.n_batch)
    )
    return _Need(int(ram), int(vram))


def _fits(need: _Need, b: _Budget) -> bool:
    if b.unified:
        return need.vram <= b.vram and need.ram + need.vram <= b.ram
    return need.ram <= b.ram and need.vram <= b.vram


def _max_layers(
    n_ctx: int, shape: ModelShape, split: WeightSplit, o: FitOptions, b: _Budget
) -> int:
    """Largest k < L whose VRAM and RAM needs fit (0 if none)."""
    best = 0
    for k in range(1, max(1, shape.n_layers)):
        need = _need(k, n_ctx, shape, split, o)
        if need.vram > b.vram:
            break
        if _fits(need, b):
            best = k
    return best


def _fmt(n: int | float) -> str:
    return f"{n / GIB:.1f} GiB"


def _classify(f: CandidateFile, b: _Budget, o: FitOptions) -> FitRow:
    quant = f.quant_name
    bpw = bits_per_weight(quant)
    eff_bpw = bpw or (f.size * 8 / f.parameter_count if f.parameter_count else 4.8)
    params = f.parameter_count or int(f.size * 8 / eff_bpw)
    shape = f.shape or ModelShape.guess(params)
    split = f.split or guess_weight_split(shape, f.size, eff_bpw)
    layers = shape.n_layers
    contexts = _contexts(o, shape.context_length)
    desired = contexts[0]

    def row(placement: Placement, k: int, ctx: int, need: _Need, reason: str) -> FitRow:
        if placement != "none" and ctx < desired:
            reason += f"; context lowered from {desired} to {ctx} tokens to fit"
        return FitRow(f.name, quant, f.size, bpw, placement, k, layers, ctx, need.ram,
                      need.vram, reason)  # fmt: skip

    def refine(ctx: int, k: int) -> int:
        """Grow a fitting context towards the next larger (failing) step, 1024 at a time."""
        i = contexts.index(ctx)
        if i == 0:
            return ctx
        lo, hi = ctx // 1024, (contexts[i - 1] - 1) // 1024
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _fits(_need(k, mid * 1024, shape, split, o), b):
                lo = mid
            else:
                hi = mid - 1
        return max(ctx, lo * 1024)

    if b.gpu and layers > 0:
        for ctx in contexts:
            if _fits(_need(layers, ctx, shape, split, o), b):
                ctx = refine(ctx, layers)
                need = _need(layers, ctx, shape, split, o)
                return row(
                    "gpu",
                    layers,
                    ctx,
                    need,
                    f"all {layers} layers and the KV cache fit in GPU memory "
                    f"({_fmt(need.vram)} of {_fmt(b.vram)})",
                )
        if not b.unified:
            for ctx in contexts:
                k = _max_layers(ctx, shape, split, o, b)
                if k > 0:
                    ctx = refine(ctx, k)
                    need = _need(k, ctx, shape, split, o)
                    return row(
                        "partial",
                        k,
                        ctx,
                        need,
                        f"{k} of {layers} layers fit in GPU memory ({_fmt(need.vram)}); the "
                        f"rest run on the CPU ({_fmt(need.ram)} of {_fmt(b.ram)} RAM)",
                    )
    if not b.unified or not b.gpu:
        for ctx in contexts:
            if _fits(_need(0, ctx, shape, split, o), b):
                ctx = refine(ctx, 0)
                need = _need(0, ctx, shape, split, o)
                why = "no usable GPU" if not b.gpu else "not even one layer fits in GPU memory"
                return row(
                    "cpu", 0, ctx, need, f"{why}; needs {_fmt(need.ram)} of {_fmt(b.ram)} RAM"
                )
    smallest = _need(0, contexts[-1], shape, split, o)
    total = smallest.ram + smallest.vram
    room = b.ram + (0 if b.unified else b.vram)
    return FitRow(
        f.name, quant, f.size, bpw, "none", 0, layers, 0, smallest.ram, smallest.vram,
        f"needs {_fmt(total)} with a {contexts[-1]}-token context; only {_fmt(room)} usable",
    )  # fmt: skip


def _choice_rank(row: FitRow, f: CandidateFile, cap: str | None) -> int:
    rank = quality_rank(row.quant)
    if f.is_qat and rank < quality_rank("Q6_K"):
        rank = quality_rank("Q6_K")
    if cap is not None and cap in QUANTS:
        rank = min(rank, quality_rank(cap))
    return rank


def fit(
    hardware: HardwareReport,
    files: Sequence[CandidateFile],
    options: FitOptions | None = None,
) -> FitResult:
    """Classify every file for this machine and choose the best one.

    :param hardware: the machine (from :func:`lsp_server.hardware.probe.probe` or built
        by hand for what-if questions).
    :param files: candidate files with their sizes; shapes from GGUF headers when known.
    :param options: context, headroom, KV cache type and selection rules.
    :returns: one row per file (input order), the choice, and a verdict message.
    """
    o = options or FitOptions()
    notes: list[str] = []
    b = _budget(hardware, o, notes)
    rows = [_classify(f, b, o) for f in files]
    cap = o.max_quality
    cores = hardware.effective_cores
    few = o.cpu_few_cores_max_quality
    if (
        not b.gpu
        and cores is not None
        and cores <= o.few_cores
        and few
        and quality_rank(few) < quality_rank(cap or "F32")
        and any(r.fits and quality_rank(r.quant) > quality_rank(few) for r in rows)
    ):
        cap = few
        notes.append(
            f"CPU only with {cores} cores: files above {cap} would be too slow, "
            "so they are not preferred"
        )
    pairs = list(zip(rows, files, strict=True))
    fitting = [(r, f) for r, f in pairs if r.fits]
    eligible = [
        (r, f)
        for r, f in fitting
        if o.force_low_bits or (nominal_bits(r.quant) or 4) >= 3 or f.is_qat
    ]
    message: str
    choice: FitRow | None = None
    if eligible:
        good_gpu = [
            (r, f)
            for r, f in eligible
            if r.placement == "gpu" and (nominal_bits(r.quant) or 4) >= 4
        ]
        pool = good_gpu or eligible
        best_row, _ = max(
            pool,
            key=lambda rf: (
                _choice_rank(rf[0], rf[1], cap),
                _PLACEMENT_ORDER[rf[0].placement],
                rf[0].context,
                -rf[0].size,
            ),
        )
        choice = replace(best_row, chosen=True)
        rows = [choice if r is best_row else r for r in rows]
        message = (
            f"Use {choice.file} ({choice.quant or 'unknown quantization'}): {choice.label}, "
            f"{choice.context}-token context"
        )
    elif fitting:
        message = (
            "Only quantizations below 3 bits fit this machine; they lose too much quality. "
            "Choose a smaller model, or force a low-bit file explicitly."
        )
    elif rows:
        smallest = min(rows, key=lambda r: r.ram_bytes + r.vram_bytes)
        message = (
            f"No file fits: the smallest ({smallest.file}) needs "
            f"{_fmt(smallest.ram_bytes + smallest.vram_bytes)}. Free memory, lower the "
            "context, or choose a smaller model."
        )
    else:
        message = "No GGUF files to choose from."
    return FitResult(tuple(rows), choice, message, b.ram, b.vram, tuple(notes))
