"""Write a copy of a GGUF model whose metadata declares FIM token ids.

No FIM-trained model can be downloaded here, so tests point the FIM special tokens
of the bundled SmolLM2 at spare special tokens (``<filename>``, ``<gh_stars>`` ...).
llama.cpp then reports them through ``llama_vocab_fim_*``. Output quality means
nothing; prompt layout, cache reuse and cancellation are what such a copy tests.
The header is rewritten with the extra keys; tensor data is copied unchanged.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import BinaryIO

SMOLLM2_FIM = {"pre": 6, "suf": 7, "mid": 8}
"""``<filename>``, ``<gh_stars>``, ``<issue_start>`` in SmolLM2's vocabulary."""
SMOLLM2_REPO = {"rep": 3, "sep": 5}
"""``<repo_name>``, ``<file_sep>``."""

_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_UINT32, _STRING, _ARRAY = 4, 8, 9


def _read(f: BinaryIO, fmt: str) -> tuple[int, ...]:
    return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))


def _skip_value(f: BinaryIO, vtype: int) -> None:
    if vtype == _STRING:
        (n,) = _read(f, "Q")
        f.seek(n, 1)
    elif vtype == _ARRAY:
        item, count = _read(f, "IQ")
        if item in _FIXED:
            f.seek(_FIXED[item] * count, 1)
        else:
            for _ in range(count):
                _skip_value(f, item)
    else:
        f.seek(_FIXED[vtype], 1)


def _kv(key: str, value: int) -> bytes:
    raw = key.encode()
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<II", _UINT32, value)


def write_fim_copy(src: Path, dst: Path, tokens: dict[str, int]) -> Path:
    """Copy ``src`` to ``dst`` adding ``tokenizer.ggml.fim_<name>_token_id`` keys."""
    with src.open("rb") as f:
        magic, version, n_tensors, n_kv = _read(f, "4sIQQ")
        assert magic == b"GGUF" and version >= 2
        start_kv = f.tell()
        alignment = 32
        for _ in range(n_kv):
            (klen,) = _read(f, "Q")
            key = f.read(klen).decode()
            (vtype,) = _read(f, "I")
            if key == "general.alignment":
                (alignment,) = _read(f, "I")
            else:
                _skip_value(f, vtype)
        end_kv = f.tell()
        for _ in range(n_tensors):
            (nlen,) = _read(f, "Q")
            f.seek(nlen, 1)
            (ndims,) = _read(f, "I")
            f.seek(8 * ndims + 4 + 8, 1)
        end_ti = f.tell()
        data_offset = -(-end_ti // alignment) * alignment
        f.seek(start_kv)
        kvs = f.read(end_kv - start_kv)
        infos = f.read(end_ti - end_kv)
        extra = b"".join(
            _kv(f"tokenizer.ggml.fim_{name}_token_id", tok) for name, tok in tokens.items()
        )
        with dst.open("wb") as out:
            out.write(struct.pack("<4sIQQ", magic, version, n_tensors, n_kv + len(tokens)))
            out.write(kvs + extra + infos)
            out.write(b"\0" * (-out.tell() % alignment))
            f.seek(data_offset)
            shutil.copyfileobj(f, out, 16 << 20)
    return dst
