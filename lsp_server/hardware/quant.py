"""Quantization names in GGUF file names: parsing, split files, bits per weight, quality.

File names on Hugging Face follow ``<model>-<QUANT>.gguf`` with many variations
(``q4_k_m``, ``Q4-K-M``, ``.Q4_K_M.``, ``-qat-q4_0``, ``-00001-of-00003.gguf``).
:func:`parse_quant` returns the canonical name (``"Q4_K_M"``); :func:`group_files`
groups split shards into one model; :data:`QUANTS` gives each quantization's
effective bits per weight (whole-file average for a 7B model, so K-quant mixes
count their larger layers) and a quality rank.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "QUANTS",
    "ModelFileGroup",
    "QuantInfo",
    "SplitInfo",
    "bits_per_weight",
    "group_files",
    "is_qat",
    "parse_quant",
    "parse_split",
    "quality_rank",
]


@dataclass(frozen=True)
class QuantInfo:
    """One quantization: effective bits per weight and rank (higher = better quality)."""

    name: str
    bits_per_weight: float
    rank: int


# Lowest to highest quality; bits per weight are whole-file averages (7-8B models).
_ORDER: list[tuple[str, float]] = [
    ("IQ1_S", 1.78),
    ("TQ1_0", 1.69),
    ("IQ1_M", 1.95),
    ("IQ2_XXS", 2.20),
    ("TQ2_0", 2.06),
    ("IQ2_XS", 2.43),
    ("IQ2_S", 2.60),
    ("IQ2_M", 2.90),
    ("Q2_K_S", 3.10),
    ("Q2_K", 3.40),
    ("Q2_K_XL", 3.50),
    ("IQ3_XXS", 3.21),
    ("IQ3_XS", 3.50),
    ("Q3_K_S", 3.50),
    ("IQ3_S", 3.66),
    ("IQ3_M", 3.80),
    ("Q3_K_M", 3.89),
    ("Q3_K_L", 4.22),
    ("Q3_K_XL", 4.30),
    ("IQ4_XS", 4.46),
    ("Q4_0", 4.54),
    ("IQ4_NL", 4.68),
    ("MXFP4", 4.25),
    ("Q4_1", 5.00),
    ("Q4_K_S", 4.57),
    ("Q4_K_M", 4.83),
    ("Q4_K_XL", 4.95),
    ("Q5_0", 5.52),
    ("Q5_1", 6.00),
    ("Q5_K_S", 5.52),
    ("Q5_K_M", 5.67),
    ("Q5_K_XL", 5.80),
    ("Q6_K", 6.56),
    ("Q6_K_XL", 6.80),
    ("Q8_0", 8.50),
    ("Q8_K_XL", 9.00),
    ("BF16", 16.0),
    ("F16", 16.0),
    ("F32", 32.0),
]
#: Canonical quantization name -> info.
QUANTS: dict[str, QuantInfo] = {
    name: QuantInfo(name, bpw, rank) for rank, (name, bpw) in enumerate(_ORDER)
}
# Unlike-named aliases.
_ALIASES = {
    "Q2_K_M": "Q2_K",
    "Q3_K": "Q3_K_M",
    "Q4_K": "Q4_K_M",
    "Q5_K": "Q5_K_M",
    "Q6_K_M": "Q6_K",
    "Q6_K_L": "Q6_K",
    "FP16": "F16",
    "FP32": "F32",
}
_QUANT_RE = re.compile(
    r"(?<![A-Z0-9])("
    r"IQ[1-4]_(?:XXS|XS|NL|S|M)"
    r"|Q[2-8]_K(?:_(?:XL|S|M|L))?"
    r"|Q4_[01]|Q5_[01]|Q8_0"
    r"|TQ[12]_0|MXFP4|BF16|FP16|FP32|F16|F32"
    r")(?![A-Z0-9])"
)
_SPLIT_RE = re.compile(r"^(?P<base>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)


def _normalize(name: str) -> str:
    stem = name.rsplit("/", 1)[-1]
    stem = re.sub(r"\.gguf$", "", stem, flags=re.I)
    return re.sub(r"[-.\s]", "_", stem.upper())


def parse_quant(filename: str) -> str | None:
    """Return the canonical quantization in a file name (``"Q4_K_M"``), or None.

    Case-insensitive; ``-``, ``_`` and ``.`` all separate parts; when several
    names appear the last one wins (``llama-q8_0-q4_k_m.gguf`` is ``Q4_K_M``).
    """
    matches = _QUANT_RE.findall(_normalize(_SPLIT_RE.sub(r"\g<base>.gguf", filename)))
    if not matches:
        return None
    name: str = matches[-1]
    return _ALIASES.get(name, name)


def is_qat(filename: str) -> bool:
    """True for quantization-aware-trained releases (``...-qat-q4_0.gguf``)."""
    return re.search(r"(?<![A-Z0-9])QAT(?![A-Z0-9])", _normalize(filename)) is not None


def bits_per_weight(quant: str | None) -> float | None:
    """Effective bits per weight of a quantization name, or None when unknown."""
    info = QUANTS.get(quant or "")
    return info.bits_per_weight if info else None


def quality_rank(quant: str | None) -> int:
    """Quality order of a quantization (higher is better; -1 when unknown)."""
    info = QUANTS.get(quant or "")
    return info.rank if info else -1


@dataclass(frozen=True)
class SplitInfo:
    """A shard of a split GGUF: ``<base>-00002-of-00003.gguf``."""

    base: str
    index: int
    count: int


def parse_split(filename: str) -> SplitInfo | None:
    """Parse ``-0000i-of-0000n.gguf`` shard names; None for a single file."""
    m = _SPLIT_RE.match(filename)
    if not m:
        return None
    return SplitInfo(m.group("base"), int(m.group("index")), int(m.group("count")))


@dataclass(frozen=True)
class ModelFileGroup:
    """One downloadable model: a single file or all shards of a split one."""

    name: str  # the single file name, or the split base name
    files: tuple[str, ...]
    quant: str | None
    qat: bool
    complete: bool  # False when shards are missing
    size: int | None = None  # total bytes when sizes were given

    @property
    def bits_per_weight(self) -> float | None:
        """Effective bits per weight of the quantization."""
        return bits_per_weight(self.quant)


def group_files(
    names: Iterable[str] | Iterable[tuple[str, int]],
) -> list[ModelFileGroup]:
    """Group ``.gguf`` names (or ``(name, size)`` pairs) into models; shards are merged.

    Non-GGUF names are ignored; the result is sorted by quality (best last), then name.
    """
    singles: list[ModelFileGroup] = []
    shards: dict[str, dict[int, tuple[str, int | None]]] = {}
    counts: dict[str, int] = {}
    for item in names:
        name, size = (item, None) if isinstance(item, str) else (item[0], item[1])
        if not name.lower().endswith(".gguf"):
            continue
        split = parse_split(name)
        if split is None:
            singles.append(
                ModelFileGroup(name, (name,), parse_quant(name), is_qat(name), True, size)
            )
            continue
        shards.setdefault(split.base, {})[split.index] = (name, size)
        counts[split.base] = max(counts.get(split.base, 0), split.count)
    for base, parts in shards.items():
        files = tuple(parts[i][0] for i in sorted(parts))
        sizes = [s for _, s in parts.values()]
        total = (
            sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None
        )
        complete = set(parts) == set(range(1, counts[base] + 1))
        singles.append(
            ModelFileGroup(base, files, parse_quant(base), is_qat(base), complete, total)
        )
    return sorted(singles, key=lambda g: (quality_rank(g.quant), g.name))
