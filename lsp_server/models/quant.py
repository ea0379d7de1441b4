"""Quantizations: one table of names, ggml tensor types, file types, bits and quality.

Every quantization name appears once, in :data:`QUANT_TABLE`, with what is known about it:

* the ggml tensor type of that name (id, block size, bytes per block; from ggml.h /
  gguf-py ``GGML_QUANT_SIZES``), used by the GGUF reader to size tensors;
* the llama_ftype (``general.file_type``) that names a whole file after it;
* the effective bits per weight of a file of that quantization (whole-file average for a
  7-8B model, so K-quant mixes count their larger layers) and its quality rank, for the
  names that appear in file names.

:data:`GGML_TYPES`, :data:`FILE_TYPES` and :data:`QUANTS` are views of that one table, so
they cannot disagree about a name. File names on Hugging Face follow
``<model>-<QUANT>.gguf`` with many variations (``q4_k_m``, ``Q4-K-M``, ``.Q4_K_M.``,
``-qat-q4_0``, ``-00001-of-00003.gguf``): :func:`parse_quant` returns the canonical name
(``"Q4_K_M"``) and :func:`group_files` groups split shards into one model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FILE_TYPES",
    "GGML_TYPES",
    "QUANTS",
    "QUANT_TABLE",
    "GgmlType",
    "ModelFileGroup",
    "Quant",
    "QuantInfo",
    "SplitInfo",
    "bits_per_weight",
    "ggml_type_name",
    "group_files",
    "is_qat",
    "parse_quant",
    "parse_split",
    "quality_rank",
]


@dataclass(frozen=True)
class GgmlType:
    """One ggml tensor type: ``block_size`` elements are stored in ``type_size`` bytes."""

    id: int
    name: str
    block_size: int
    type_size: int

    @property
    def bits_per_weight(self) -> float:
        """Average storage bits per element."""
        return self.type_size * 8 / self.block_size


@dataclass(frozen=True)
class Quant:
    """One row of :data:`QUANT_TABLE`: a quantization name and everything known about it."""

    name: str
    #: The ggml tensor type of this name, or None when the name is only a file mix.
    ggml: GgmlType | None
    #: The llama_ftype (``general.file_type``) of files of this name, or None.
    file_type: int | None
    #: Effective bits per weight of a file of this quantization; None when it has no
    #: file-name convention (then it is not ranked either).
    bits_per_weight: float | None
    #: Quality order among the ranked names (higher is better); -1 when unranked.
    rank: int


@dataclass(frozen=True)
class QuantInfo:
    """One quantization found in file names: effective bits per weight and quality rank."""

    name: str
    bits_per_weight: float
    rank: int


_Ggml = tuple[int, int, int]  # (ggml type id, block size, bytes per block)


def _table(rows: Iterable[tuple[str, _Ggml | None, int | None, float | None]]) -> tuple[Quant, ...]:
    """Build the rows; ranks follow the order of the rows that have bits per weight."""
    out: list[Quant] = []
    rank = 0
    for name, ggml, ftype, bpw in rows:
        gtype = GgmlType(ggml[0], name, ggml[1], ggml[2]) if ggml else None
        out.append(Quant(name, gtype, ftype, bpw, rank if bpw is not None else -1))
        rank += bpw is not None
    return tuple(out)


#: Every quantization name. Ranked rows (with bits per weight) run from the lowest quality
#: to the highest; the rest are ggml types or file types without a file-name convention.
QUANT_TABLE: Final[tuple[Quant, ...]] = _table([
    # name        ggml (id, block, bytes)  llama_ftype  bits/weight in a file
    ("IQ1_S",     (19, 256, 50),   24,   1.78),
    ("TQ1_0",     (34, 256, 54),   36,   1.69),
    ("IQ1_M",     (29, 256, 56),   31,   1.95),
    ("IQ2_XXS",   (16, 256, 66),   19,   2.20),
    ("TQ2_0",     (35, 256, 66),   37,   2.06),
    ("IQ2_XS",    (17, 256, 74),   20,   2.43),
    ("IQ2_S",     (22, 256, 82),   28,   2.60),
    ("IQ2_M",     None,            29,   2.90),
    ("Q2_K_S",    None,            21,   3.10),
    ("Q2_K",      (10, 256, 84),   10,   3.40),
    ("Q2_K_XL",   None,            None, 3.50),
    ("IQ3_XXS",   (18, 256, 98),   23,   3.21),
    ("IQ3_XS",    None,            22,   3.50),
    ("Q3_K_S",    None,            11,   3.50),
    ("IQ3_S",     (21, 256, 110),  26,   3.66),
    ("IQ3_M",     None,            27,   3.80),
    ("Q3_K_M",    None,            12,   3.89),
    ("Q3_K_L",    None,            13,   4.22),
    ("Q3_K_XL",   None,            None, 4.30),
    ("IQ4_XS",    (23, 256, 136),  30,   4.46),
    ("Q4_0",      (2, 32, 18),     2,    4.54),
    ("IQ4_NL",    (20, 32, 18),    25,   4.68),
    ("MXFP4",     (39, 32, 17),    None, 4.25),
    ("Q4_1",      (3, 32, 20),     3,    5.00),
    ("Q4_K_S",    None,            14,   4.57),
    ("Q4_K_M",    None,            15,   4.83),
    ("Q4_K_XL",   None,            None, 4.95),
    ("Q5_0",      (6, 32, 22),     8,    5.52),
    ("Q5_1",      (7, 32, 24),     9,    6.00),
    ("Q5_K_S",    None,            16,   5.52),
    ("Q5_K_M",    None,            17,   5.67),
    ("Q5_K_XL",   None,            None, 5.80),
    ("Q6_K",      (14, 256, 210),  18,   6.56),
    ("Q6_K_XL",   None,            None, 6.80),
    ("Q8_0",      (8, 32, 34),     7,    8.50),
    ("Q8_K_XL",   None,            None, 9.00),
    ("BF16",      (30, 1, 2),      32,   16.0),
    ("F16",       (1, 1, 2),       1,    16.0),
    ("F32",       (0, 1, 4),       0,    32.0),
    # Unranked: tensor types inside K-quant mixes and newer or internal types.
    ("Q8_1",      (9, 32, 40),     None, None),
    ("Q3_K",      (11, 256, 110),  None, None),
    ("Q4_K",      (12, 256, 144),  None, None),
    ("Q5_K",      (13, 256, 176),  None, None),
    ("Q8_K",      (15, 256, 292),  None, None),
    ("I8",        (24, 1, 1),      None, None),
    ("I16",       (25, 1, 2),      None, None),
    ("I32",       (26, 1, 4),      None, None),
    ("I64",       (27, 1, 8),      None, None),
    ("F64",       (28, 1, 8),      None, None),
    ("MXFP4_MOE", None,            38,   None),
    ("NVFP4",     (40, 64, 36),    39,   None),
    ("Q1_0",      (41, 128, 18),   40,   None),
])  # fmt: skip

#: ggml type id -> tensor type.
GGML_TYPES: Final[dict[int, GgmlType]] = {
    q.ggml.id: q.ggml for q in sorted(QUANT_TABLE, key=lambda q: q.ggml.id if q.ggml else -1)
    if q.ggml is not None
}  # fmt: skip
#: ``general.file_type`` (llama_ftype) -> quantization name as used in file names.
FILE_TYPES: Final[dict[int, str]] = {
    q.file_type: q.name
    for q in sorted(QUANT_TABLE, key=lambda q: q.file_type if q.file_type is not None else -1)
    if q.file_type is not None
}
#: Canonical quantization name (as found in file names) -> bits per weight and rank.
QUANTS: Final[dict[str, QuantInfo]] = {
    q.name: QuantInfo(q.name, q.bits_per_weight, q.rank)
    for q in QUANT_TABLE
    if q.bits_per_weight is not None
}


def ggml_type_name(type_id: int) -> str:
    """Return the name of a ggml type id (``"Q4_K"``), or ``"type<id>"`` when unknown."""
    t = GGML_TYPES.get(type_id)
    return t.name if t else f"type{type_id}"


# ---------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------

# Unlike-named aliases in file names.
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
