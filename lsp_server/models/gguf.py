"""Pure-Python GGUF header reader: metadata, tensor table and size checks, no numpy.

The reader parses the header of a GGUF v2/v3 file (little-endian) without loading
tensor data. Large metadata arrays (the tokenizer vocabulary, scores, merges) are
skipped in bulk and kept as an :class:`ArraySummary` so that even a 262k-token
vocabulary is read in a fraction of a second. Errors are typed: a file that is not
GGUF raises :class:`~lsp_server.core.errors.ModelInvalid`, a truncated or inconsistent
one raises :class:`~lsp_server.core.errors.ModelCorrupt`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from lsp_server.core.errors import ModelCorrupt, ModelInvalid
from lsp_server.models.quant import FILE_TYPES, GGML_TYPES, ggml_type_name

__all__ = [
    "ARRAY_SUMMARY_THRESHOLD",
    "ArraySummary",
    "GgufFile",
    "TensorInfo",
    "ValueType",
    "read_gguf",
    "read_gguf_from",
]

log = logging.getLogger(__name__)

GGUF_MAGIC: Final = b"GGUF"
SUPPORTED_VERSIONS: Final = (2, 3)
DEFAULT_ALIGNMENT: Final = 32
#: Arrays longer than this are stored as an :class:`ArraySummary`, not as items.
ARRAY_SUMMARY_THRESHOLD: Final = 1024
#: Sanity limits: anything above is treated as a corrupt header, never allocated.
MAX_TENSORS: Final = 10_000_000
MAX_KV_PAIRS: Final = 10_000_000
MAX_DIMS: Final = 8
_CHUNK: Final = 1 << 20


class ValueType:
    """GGUF metadata value type ids (``gguf_type`` in ggml's gguf.h)."""

    UINT8: Final = 0
    INT8: Final = 1
    UINT16: Final = 2
    INT16: Final = 3
    UINT32: Final = 4
    INT32: Final = 5
    FLOAT32: Final = 6
    BOOL: Final = 7
    STRING: Final = 8
    ARRAY: Final = 9
    UINT64: Final = 10
    INT64: Final = 11
    FLOAT64: Final = 12


_SCALAR_FORMATS: Final[dict[int, str]] = {
    ValueType.UINT8: "B",
    ValueType.INT8: "b",
    ValueType.UINT16: "H",
    ValueType.INT16: "h",
    ValueType.UINT32: "I",
    ValueType.INT32: "i",
    ValueType.FLOAT32: "f",
    ValueType.BOOL: "?",
    ValueType.UINT64: "Q",
    ValueType.INT64: "q",
    ValueType.FLOAT64: "d",
}
_SCALAR_SIZES: Final[dict[int, int]] = {
    t: struct.calcsize("<" + f) for t, f in _SCALAR_FORMATS.items()
}
_VALUE_TYPE_NAMES: Final[dict[int, str]] = {
    v: k for k, v in vars(ValueType).items() if k.isupper() and isinstance(v, int)
}


@dataclass(frozen=True)
class ArraySummary:
    """Stands in for a long metadata array whose items were skipped, not stored."""

    item_type: int
    length: int

    @property
    def item_type_name(self) -> str:
        """Name of the item value type (``"STRING"``)."""
        return _VALUE_TYPE_NAMES.get(self.item_type, f"type{self.item_type}")

    def __len__(self) -> int:
        return self.length


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table; ``offset`` is relative to ``GgufFile.data_offset``."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]
    offset: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        """Number of elements (product of the shape)."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        """ggml type name, e.g. ``"Q4_K"``."""
        return ggml_type_name(self.ggml_type)


@dataclass(frozen=True)
class GgufFile:
    """Parsed header of a GGUF file (metadata and tensor table, no tensor data)."""

    path: str | None
    version: int
    metadata: dict[str, Any] = field(hash=False)
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int | None
    header_size: int = 0
    alignment: int = DEFAULT_ALIGNMENT

    # -- generic access -------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Return a metadata value, or ``default`` when absent."""
        return self.metadata.get(key, default)

    def arch_get(self, suffix: str, default: Any = None) -> Any:
        """Return ``{architecture}.{suffix}`` from the metadata, or ``default``."""
        arch = self.architecture
        if arch is None:
            return default
        return self.metadata.get(f"{arch}.{suffix}", default)

    def _arch_int(self, suffix: str) -> int | None:
        value = self.arch_get(suffix)
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            return int(max(value))  # per-layer arrays: the largest layer
        return None

    def _str(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def _int(self, key: str) -> int | None:
        value = self.metadata.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    # -- sizes ----------------------------------------------------------------------------

    @property
    def tensor_bytes(self) -> int:
        """Total bytes of all tensors (weights)."""
        return sum(t.n_bytes for t in self.tensors)

    @property
    def expected_size(self) -> int:
        """Smallest file size that holds the header and every tensor."""
        if not self.tensors:
            return self.header_size
        return self.data_offset + max(t.offset + t.n_bytes for t in self.tensors)

    @property
    def parameter_count(self) -> int:
        """Sum of the element counts of all tensors."""
        return sum(t.n_elements for t in self.tensors)

    @property
    def bits_per_weight(self) -> float | None:
        """Average stored bits per parameter, or None without tensors."""
        n = self.parameter_count
        return self.tensor_bytes * 8 / n if n else None

    # -- general.* --------------------------------------------------------------------------

    @property
    def architecture(self) -> str | None:
        """``general.architecture`` (``"llama"``, ``"gemma3"``...)."""
        return self._str("general.architecture")

    @property
    def name(self) -> str | None:
        """``general.name``."""
        return self._str("general.name")

    @property
    def license(self) -> str | None:
        """``general.license``."""
        return self._str("general.license")

    @property
    def file_type(self) -> int | None:
        """Raw ``general.file_type`` (llama_ftype)."""
        return self._int("general.file_type")

    @property
    def quantization(self) -> str | None:
        """Quantization name (``"Q4_K_M"``) from ``general.file_type``, else the type
        holding most tensor bytes among matrices (``"Q4_K"``); None without either."""
        ft = self.file_type
        if ft is not None and ft in FILE_TYPES:
            return FILE_TYPES[ft]
        totals: dict[int, int] = {}
        for t in self.tensors:
            if len(t.shape) >= 2:
                totals[t.ggml_type] = totals.get(t.ggml_type, 0) + t.n_bytes
        if not totals:
            return None
        return ggml_type_name(max(totals, key=lambda k: totals[k]))

    # -- {arch}.* -------------------------------------------------------------------------

    @property
    def context_length(self) -> int | None:
        """Training context length (``{arch}.context_length``)."""
        return self._arch_int("context_length")

    @property
    def block_count(self) -> int | None:
        """Number of transformer layers (``{arch}.block_count``)."""
        return self._arch_int("block_count")

    @property
    def embedding_length(self) -> int | None:
        """Hidden size (``{arch}.embedding_length``)."""
        return self._arch_int("embedding_length")

    @property
    def head_count(self) -> int | None:
        """Attention heads (``{arch}.attention.head_count``; max over layers if per-layer)."""
        return self._arch_int("attention.head_count")

    @property
    def head_count_kv(self) -> int | None:
        """KV heads (``{arch}.attention.head_count_kv``), defaulting to ``head_count``
        as llama.cpp does; the largest layer's value when stored per layer."""
        value = self._arch_int("attention.head_count_kv")
        return value if value is not None else self.head_count

    @property
    def head_count_kv_per_layer(self) -> tuple[int, ...] | None:
        """KV heads of each layer, or None when the model has no layer count."""
        n = self.block_count
        if n is None:
            return None
        value = self.arch_get("attention.head_count_kv")
        if isinstance(value, list) and len(value) == n:
            return tuple(int(v) for v in value)
        kv = self.head_count_kv
        return None if kv is None else (kv,) * n

    @property
    def key_length(self) -> int | None:
        """Per-head key size (``{arch}.attention.key_length``, default embedding/heads)."""
        value = self._arch_int("attention.key_length")
        if value is not None:
            return value
        emb, heads = self.embedding_length, self.head_count
        return emb // heads if emb and heads else None

    @property
    def value_length(self) -> int | None:
        """Per-head value size (``{arch}.attention.value_length``, default embedding/heads)."""
        value = self._arch_int("attention.value_length")
        if value is not None:
            return value
        emb, heads = self.embedding_length, self.head_count
        return emb // heads if emb and heads else None

    @property
    def sliding_window(self) -> int | None:
        """Sliding-window attention size (``{arch}.attention.sliding_window``)."""
        return self._arch_int("attention.sliding_window")

    # -- tokenizer.* ----------------------------------------------------------------------

    @property
    def chat_template(self) -> str | None:
        """``tokenizer.chat_template`` (Jinja source)."""
        return self._str("tokenizer.chat_template")

    @property
    def vocab_size(self) -> int | None:
        """Number of tokens in ``tokenizer.ggml.tokens``."""
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, (list, ArraySummary)):
            return len(tokens)
        return None

    @property
    def tokenizer_model(self) -> str | None:
        """``tokenizer.ggml.model`` (``"gpt2"``, ``"llama"``...)."""
        return self._str("tokenizer.ggml.model")

    @property
    def bos_token_id(self) -> int | None:
        """``tokenizer.ggml.bos_token_id``."""
        return self._int("tokenizer.ggml.bos_token_id")

    @property
    def eos_token_id(self) -> int | None:
        """``tokenizer.ggml.eos_token_id``."""
        return self._int("tokenizer.ggml.eos_token_id")

    def _fim(self, key: str, legacy: str | None = None) -> int | None:
        value = self._int(f"tokenizer.ggml.{key}")
        if value is None and legacy is not None:
            value = self._int(f"tokenizer.ggml.{legacy}")
        return value

    @property
    def fim_pre_token_id(self) -> int | None:
        """FIM prefix token (``tokenizer.ggml.fim_pre_token_id``, legacy ``prefix_token_id``)."""
        return self._fim("fim_pre_token_id", "prefix_token_id")

    @property
    def fim_suf_token_id(self) -> int | None:
        """FIM suffix token (``tokenizer.ggml.fim_suf_token_id``, legacy ``suffix_token_id``)."""
        return self._fim("fim_suf_token_id", "suffix_token_id")

    @property
    def fim_mid_token_id(self) -> int | None:
        """FIM middle token (``tokenizer.ggml.fim_mid_token_id``, legacy ``middle_token_id``)."""
        return self._fim("fim_mid_token_id", "middle_token_id")

    @property
    def fim_pad_token_id(self) -> int | None:
        """``tokenizer.ggml.fim_pad_token_id``."""
        return self._fim("fim_pad_token_id")

    @property
    def fim_rep_token_id(self) -> int | None:
        """``tokenizer.ggml.fim_rep_token_id`` (repository name marker)."""
        return self._fim("fim_rep_token_id")

    @property
    def fim_sep_token_id(self) -> int | None:
        """``tokenizer.ggml.fim_sep_token_id`` (file separator)."""
        return self._fim("fim_sep_token_id")

    @property
    def supports_fim(self) -> bool:
        """True when prefix, suffix and middle FIM tokens are all declared."""
        return None not in (self.fim_pre_token_id, self.fim_suf_token_id, self.fim_mid_token_id)

    def summary(self) -> dict[str, Any]:
        """A small JSON-friendly description (camelCase keys) for logs and the CLI."""
        return {
            "path": self.path,
            "version": self.version,
            "architecture": self.architecture,
            "name": self.name,
            "license": self.license,
            "quantization": self.quantization,
            "parameterCount": self.parameter_count,
            "tensorBytes": self.tensor_bytes,
            "fileSize": self.file_size,
            "contextLength": self.context_length,
            "blockCount": self.block_count,
            "embeddingLength": self.embedding_length,
            "headCount": self.head_count,
            "headCountKv": self.head_count_kv,
            "slidingWindow": self.sliding_window,
            "vocabSize": self.vocab_size,
            "hasChatTemplate": self.chat_template is not None,
            "supportsFim": self.supports_fim,
        }


# ---------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------


class _Truncated(Exception):
    """Internal: the stream ended while ``what`` was being read."""

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(what)
        self.what = what
        self.offset = offset


class _Reader:
    """Chunked little-endian reader over ``f.read`` (no seek needed)."""

    def __init__(self, f: BinaryIO, file_size: int | None, where: str) -> None:
        self.f = f
        self.file_size = file_size
        self.where = where
        self.buf = b""
        self.pos = 0
        self.base = 0  # file offset of buf[0]

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def remaining(self) -> int | None:
        return None if self.file_size is None else self.file_size - self.offset

    def _fill(self, n: int, what: str) -> None:
        """Ensure ``n`` bytes are buffered at ``pos``."""
        have = len(self.buf) - self.pos
        if have >= n:
            return
        parts = [self.buf[self.pos :]]
        self.base += self.pos
        self.pos = 0
        want = max(n - have, _CHUNK)
        while have < n:
            chunk = self.f.read(want)
            if not chunk:
                self.buf = b"".join(parts)
                raise _Truncated(what, self.base + have)
            parts.append(chunk)
            have += len(chunk)
            want = max(n - have, _CHUNK)
        self.buf = b"".join(parts)

    def read(self, n: int, what: str) -> bytes:
        self._fill(n, what)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int, what: str) -> None:
        have = len(self.buf) - self.pos
        if n <= have:
            self.pos += n
            return
        # Drop the buffer and read the rest in chunks without keeping it.
        self.base += len(self.buf)
        self.buf = b""
        self.pos = 0
        left = n - have
        while left > 0:
            chunk = self.f.read(min(left, 4 * _CHUNK))
            if not chunk:
                raise _Truncated(what, self.base)
            self.base += len(chunk)
            left -= len(chunk)

    def u32(self, what: str) -> int:
        self._fill(4, what)
        (v,) = struct.unpack_from("<I", self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u64(self, what: str) -> int:
        self._fill(8, what)
        (v,) = struct.unpack_from("<Q", self.buf, self.pos)
        self.pos += 8
        return int(v)

    def scalar(self, vtype: int, what: str) -> Any:
        size = _SCALAR_SIZES[vtype]
        self._fill(size, what)
        (v,) = struct.unpack_from("<" + _SCALAR_FORMATS[vtype], self.buf, self.pos)
        self.pos += size
        return v

    def string_length(self, what: str) -> int:
        n = self.u64(what)
        rem = self.remaining()
        if (rem is not None and n > rem) or n > (1 << 40):
            raise self.corrupt(
                f"{what} claims a length of {n:,} bytes, more than the rest of the file"
            )
        return n

    def string(self, what: str) -> str:
        n = self.string_length(what)
        return self.read(n, what).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        """Skip ``count`` length-prefixed strings, working on the buffer directly."""
        unpack_from = struct.unpack_from
        limit = self.remaining()
        for _ in range(count):
            if len(self.buf) - self.pos < 8:
                self._fill(8, what)
            (n,) = unpack_from("<Q", self.buf, self.pos)
            if (limit is not None and n > limit) or n > (1 << 40):
                raise self.corrupt(
                    f"{what} holds a string of {n:,} bytes, more than the rest of the file"
                )
            end = self.pos + 8 + n
            if end <= len(self.buf):
                self.pos = end
            else:
                self.pos += 8
                self.skip(n, what)

    def corrupt(self, detail: str) -> ModelCorrupt:
        size = "" if self.file_size is None else f" ({self.file_size:,} bytes)"
        return ModelCorrupt(
            f"{self.where}{size} has a damaged GGUF header: {detail} (at byte {self.offset:,}); "
            "delete it and download it again",
            data={"path": self.where, "offset": self.offset},
        )


def _read_value(r: _Reader, vtype: int, key: str, depth: int = 0) -> Any:
    if vtype in _SCALAR_FORMATS:
        return r.scalar(vtype, f"the value of {key!r}")
    if vtype == ValueType.STRING:
        return r.string(f"the string value of {key!r}")
    if vtype == ValueType.ARRAY:
        if depth > 8:
            raise r.corrupt(f"metadata {key!r} nests arrays more than 8 deep")
        item_type = r.u32(f"the array type of {key!r}")
        length = r.u64(f"the array length of {key!r}")
        return _read_array(r, item_type, length, key, depth)
    raise r.corrupt(f"metadata {key!r} has unknown value type {vtype}")


def _read_array(r: _Reader, item_type: int, length: int, key: str, depth: int) -> Any:
    what = f"the array {key!r}"
    rem = r.remaining()
    min_item = _SCALAR_SIZES.get(item_type, 8 if item_type == ValueType.STRING else 12)
    if item_type not in _SCALAR_FORMATS and item_type not in (ValueType.STRING, ValueType.ARRAY):
        raise r.corrupt(f"array {key!r} has unknown item type {item_type}")
    if (rem is not None and length * min_item > rem) or length > (1 << 40):
        raise r.corrupt(f"array {key!r} claims {length:,} items, more than the file can hold")
    summarize = length > ARRAY_SUMMARY_THRESHOLD
    if item_type in _SCALAR_FORMATS:
        size = _SCALAR_SIZES[item_type]
        if summarize:
            r.skip(length * size, what)
            return ArraySummary(item_type, length)
        data = r.read(length * size, what)
        return list(struct.unpack(f"<{length}{_SCALAR_FORMATS[item_type]}", data))
    if item_type == ValueType.STRING:
        if summarize:
            r.skip_strings(length, what)
            return ArraySummary(item_type, length)
        return [r.string(what) for _ in range(length)]
    # Nested arrays.
    items = []
    for _ in range(length):
        sub_type = r.u32(f"an item type in {key!r}")
        sub_len = r.u64(f"an item length in {key!r}")
        items.append(_read_array(r, sub_type, sub_len, key, depth + 1))
    return ArraySummary(item_type, length) if summarize else items


def _sniff_not_gguf(head: bytes, where: str) -> ModelInvalid:
    hint = "it does not start with the GGUF magic bytes"
    if head[:4] in (b"ggml", b"ggmf", b"ggjt", b"lmgg", b"fmgg", b"tjgg"):
        hint = "it is an old GGML/GGJT model; convert it to GGUF or download a GGUF version"
    elif head.startswith(b"version https://git-lfs"):
        hint = "it is a Git LFS pointer file, not the model; download the real file"
    elif head.lstrip()[:1] == b"<":
        hint = "it looks like an HTML/XML page (an error page saved instead of the model)"
    elif head.lstrip()[:1] == b"{":
        hint = "it looks like a JSON document, not a model"
    elif head[:2] == b"PK":
        hint = "it is a ZIP archive (a PyTorch/safetensors checkpoint?), not GGUF"
    return ModelInvalid(
        f"{where} is not a GGUF model: {hint} (first bytes {head[:8]!r})",
        data={"path": where},
    )


def read_gguf_from(
    f: BinaryIO,
    *,
    file_size: int | None = None,
    path: str | None = None,
    check_size: bool = True,
) -> GgufFile:
    """Parse a GGUF header from a binary stream positioned at the start of the file.

    Only ``f.read`` is used, so any stream works (a local file, a remote range reader).

    :param f: binary stream at offset 0 of the GGUF file.
    :param file_size: total size of the file when known; enables truncation checks.
    :param path: name used in error messages and stored in the result.
    :param check_size: when True and ``file_size`` is known, raise
        :class:`ModelCorrupt` if the tensor table needs more bytes than the file has.
    :raises ModelInvalid: not a GGUF file, big-endian, or unsupported GGUF version.
    :raises ModelCorrupt: the header is cut short, inconsistent, or the file truncated.
    """
    where = path or "<stream>"
    r = _Reader(f, file_size, where)
    try:
        return _parse(r, path, file_size, check_size)
    except _Truncated as exc:
        size = file_size if file_size is not None else exc.offset
        if size == 0:
            msg = (
                f"{where} is empty (0 bytes): the download is incomplete; delete it and "
                "download again"
            )
        else:
            msg = (
                f"{where} is {size:,} bytes but its GGUF header is cut short while reading "
                f"{exc.what}: the download is incomplete; delete it and download again"
            )
        raise ModelCorrupt(msg, data={"path": where, "fileSize": size}) from None


def _parse(r: _Reader, path: str | None, file_size: int | None, check_size: bool) -> GgufFile:
    where = r.where
    try:
        r._fill(4, "the magic bytes")
    except _Truncated:
        head = r.buf[r.pos :]
        if head and not GGUF_MAGIC.startswith(head):
            raise _sniff_not_gguf(head, where) from None
        raise
    magic = r.read(4, "the magic bytes")
    if magic != GGUF_MAGIC:
        with contextlib.suppress(_Truncated):  # peek a little more for a better hint
            r._fill(60, "")
        raise _sniff_not_gguf(magic + r.buf[r.pos : r.pos + 60], where)
    version = r.u32("the GGUF version")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in SUPPORTED_VERSIONS or swapped == 1:
            raise ModelInvalid(
                f"{where} is a big-endian GGUF file (version {swapped}); llama.cpp on this "
                "machine needs little-endian GGUF: download the normal (little-endian) file",
                data={"path": where, "version": swapped},
            )
        if version == 1:
            raise ModelInvalid(
                f"{where} uses GGUF version 1, which is no longer supported; "
                "download a newer conversion of the model",
                data={"path": where, "version": version},
            )
        raise ModelInvalid(
            f"{where} uses GGUF version {version}, which this reader does not support "
            f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))}); update Open LLM LSP "
            "or use another file",
            data={"path": where, "version": version},
        )
    n_tensors = r.u64("the tensor count")
    n_kv = r.u64("the metadata count")
    if n_tensors > MAX_TENSORS:
        raise r.corrupt(f"it claims {n_tensors:,} tensors")
    if n_kv > MAX_KV_PAIRS:
        raise r.corrupt(f"it claims {n_kv:,} metadata entries")

    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key = r.string(f"metadata key #{i}")
        vtype = r.u32(f"the type of metadata {key!r}")
        metadata[key] = _read_value(r, vtype, key)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if (
        not isinstance(alignment, int)
        or isinstance(alignment, bool)
        or alignment <= 0
        or alignment & (alignment - 1)
    ):
        raise r.corrupt(f"general.alignment is {alignment!r}, not a power of two")

    tensors: list[TensorInfo] = []
    for i in range(n_tensors):
        name = r.string(f"the name of tensor #{i}")
        n_dims = r.u32(f"the dimension count of tensor {name!r}")
        if n_dims > MAX_DIMS:
            raise r.corrupt(f"tensor {name!r} claims {n_dims} dimensions")
        shape = tuple(r.u64(f"the shape of tensor {name!r}") for _ in range(n_dims))
        type_id = r.u32(f"the type of tensor {name!r}")
        offset = r.u64(f"the offset of tensor {name!r}")
        gtype = GGML_TYPES.get(type_id)
        if gtype is None:
            raise ModelInvalid(
                f"{where}: tensor {name!r} uses ggml type {type_id}, which this version does "
                "not know (a newer quantization?); update Open LLM LSP and llama.cpp or use "
                "another quantization of the model",
                data={"path": where, "tensor": name, "ggmlType": type_id},
            )
        n_el = 1
        for d in shape:
            n_el *= d
        if shape and shape[0] % gtype.block_size:
            raise r.corrupt(
                f"tensor {name!r} has row size {shape[0]}, not a multiple of the "
                f"{gtype.name} block size {gtype.block_size}"
            )
        if offset % alignment:
            raise r.corrupt(f"tensor {name!r} offset {offset} is not {alignment}-byte aligned")
        n_bytes = n_el // gtype.block_size * gtype.type_size
        tensors.append(TensorInfo(name, type_id, shape, offset, n_bytes))

    header_size = r.offset
    data_offset = -(-header_size // alignment) * alignment
    result = GgufFile(
        path=path,
        version=version,
        metadata=metadata,
        tensors=tuple(tensors),
        data_offset=data_offset,
        file_size=file_size,
        header_size=header_size,
        alignment=alignment,
    )
    if check_size and file_size is not None and result.expected_size > file_size:
        expected = result.expected_size
        raise ModelCorrupt(
            f"{where} is {file_size:,} bytes but its tensor table needs {expected:,}: "
            "the download is incomplete; delete it and download again",
            data={"path": where, "fileSize": file_size, "expectedSize": expected},
        )
    log.debug(
        "read GGUF v%d %s: %d metadata, %d tensors, data at %d",
        version,
        where,
        len(metadata),
        len(tensors),
        data_offset,
    )
    return result


def read_gguf(path: str | os.PathLike[str], *, check_size: bool = True) -> GgufFile:
    """Read the header of a local GGUF file.

    :param path: path of the ``.gguf`` file.
    :param check_size: raise :class:`ModelCorrupt` when the file is shorter than its
        tensor table requires (an interrupted download).
    :raises ModelNotFound: the file does not exist or cannot be opened.
    :raises ModelInvalid: not a GGUF file / unsupported version.
    :raises ModelCorrupt: truncated or inconsistent header.
    """
    from lsp_server.core.errors import ModelNotFound

    p = os.fspath(path)
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ModelNotFound(f"model file {p} does not exist", data={"path": p}) from None
    except IsADirectoryError:
        raise ModelInvalid(f"{p} is a directory, not a GGUF file", data={"path": p}) from None
    except OSError as exc:
        raise ModelNotFound(
            f"model file {p} cannot be opened: {exc.strerror or exc}", data={"path": p}
        ) from None
    with f:
        size = os.fstat(f.fileno()).st_size
        return read_gguf_from(f, file_size=size, path=p, check_size=check_size)
