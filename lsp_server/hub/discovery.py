"""Find the GGUF models already on this machine and describe them from their headers.

Places searched, in order: the bundled models, the Hugging Face cache (the latest
snapshot of every model repository, ``scan_cache_dir``), LM Studio's models folders
(``~/.lmstudio/models``, ``~/.cache/lm-studio/models``) and the folders of the
``openLlm.models.folders`` setting (recursively). Split models (``-00001-of-00003``)
are listed once, by their first shard, with the total size. Vision projectors
(``mmproj-*.gguf``) are skipped. Headers are read once per file version (path, size,
modification time) and kept in memory. Folder scans are bounded (see :func:`_walk`):
links are followed but never into ``/proc``, ``/sys`` or ``/dev``, and never twice into
the same directory.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.core.errors import OpenLlmError
from lsp_server.hub.licenses import LicenseInfo, license_info, readme_file_license
from lsp_server.models.gguf import GgufFile, read_gguf
from lsp_server.models.quant import parse_quant, parse_split

__all__ = [
    "LM_STUDIO_DIRS",
    "Discovery",
    "LocalModel",
    "cached_repos",
    "cached_summary",
    "discover",
    "hub_cache_dir",
    "local_license",
]

log = logging.getLogger(__name__)

LM_STUDIO_DIRS = ("~/.lmstudio/models", "~/.cache/lm-studio/models")
_MAX_FILES_PER_FOLDER = 5000
_MAX_DIRS = 20_000
_MAX_DEPTH = 16
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment at call time (``HF_HUB_CACHE``,
    ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``/hub), else huggingface_hub's default."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(var)
        if value:
            return Path(os.path.expandvars(value)).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class LocalModel:
    """One model file (or split model) found on this machine."""

    path: Path
    source: str  # "bundled", "huggingface", "lmstudio", "folder"
    spec: str  # the value for openLlm.model / openLlm.completion.model
    size: int
    parts: int = 1
    complete: bool = True
    repo: str | None = None
    revision: str | None = None
    header: dict[str, Any] = field(default_factory=dict)
    license: LicenseInfo | None = None
    error: str | None = None

    @property
    def quant(self) -> str | None:
        """Quantization from the file name, else from the header."""
        return parse_quant(self.path.name) or self.header.get("quantization")

    def to_dict(self, accepted: Iterable[str] = ()) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys; ``accepted`` marks accepted licenses."""
        keys = set(accepted)
        h = self.header
        return {
            "spec": self.spec,
            "path": str(self.path),
            "file": self.path.name,
            "source": self.source,
            "repo": self.repo,
            "revision": self.revision,
            "size": self.size,
            "parts": self.parts,
            "complete": self.complete,
            "name": h.get("name"),
            "architecture": h.get("architecture"),
            "parameters": h.get("parameterCount"),
            "quant": self.quant,
            "contextLength": h.get("contextLength"),
            "supportsFim": h.get("supportsFim"),
            "hasChatTemplate": h.get("hasChatTemplate"),
            "license": self.license.to_dict(self.license.key in keys) if self.license else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class Discovery:
    """Everything found, and where it looked."""

    models: tuple[LocalModel, ...]
    searched: tuple[str, ...]
    cache_dir: Path

    def to_dict(self, accepted: Iterable[str] = ()) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        keys = list(accepted)
        return {
            "models": [m.to_dict(keys) for m in self.models],
            "searched": list(self.searched),
            "cacheDir": str(self.cache_dir),
        }


# ---------------------------------------------------------------------------------------
# Header cache
# ---------------------------------------------------------------------------------------

_headers: OrderedDict[tuple[str, int, int], tuple[dict[str, Any], str | None]] = OrderedDict()
_headers_lock = threading.Lock()


def _header(path: Path) -> tuple[dict[str, Any], str | None]:
    """``(summary, error)`` of a GGUF header, cached by path, size and mtime."""
    try:
        st = path.stat()
    except OSError as exc:
        return {}, f"cannot read {path}: {exc.strerror or exc}"
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _headers_lock:
        hit = _headers.get(key)
        if hit is not None:
            _headers.move_to_end(key)
            return hit
    summary: dict[str, Any] = {}
    error: str | None = None
    try:
        g: GgufFile = read_gguf(path, check_size=parse_split(path.name) is None)
        summary = g.summary()
    except OpenLlmError as exc:
        error = exc.message
    except OSError as exc:  # pragma: no cover - races with deletion
        error = f"cannot read {path}: {exc}"
    with _headers_lock:
        _headers[key] = (summary, error)
        while len(_headers) > 512:
            _headers.popitem(last=False)
    return summary, error


def local_license(path: Path, header: dict[str, Any] | None = None) -> LicenseInfo | None:
    """A local file's license: ``general.license`` from its header, else the
    ``license:`` of a model card (``README.md``) next to it (Hugging Face snapshots)."""
    summary = header if header is not None else _header(path)[0]
    info = license_info(summary.get("license"), source="gguf")
    if info is not None:
        return info
    return readme_file_license(path.parent / "README.md")


# ---------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------


def _is_model(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(".gguf") and "mmproj" not in lower and not name.startswith(".")


def _group(files: Sequence[Path]) -> list[tuple[Path, int, int, bool]]:
    """``(first file, total size, parts, complete)`` per model; shards merged."""
    singles: list[tuple[Path, int, int, bool]] = []
    shards: dict[tuple[Path, str], dict[int, Path]] = {}
    counts: dict[tuple[Path, str], int] = {}
    for f in files:
        split = parse_split(f.name)
        if split is None:
            singles.append((f, _size(f), 1, True))
            continue
        key = (f.parent, split.base)
        shards.setdefault(key, {})[split.index] = f
        counts[key] = split.count
    for key, parts in shards.items():
        first = parts.get(1) or parts[min(parts)]
        total = sum(_size(p) for p in parts.values())
        complete = set(parts) == set(range(1, counts[key] + 1))
        singles.append((first, total, len(parts), complete))
    return sorted(singles, key=lambda t: str(t[0]))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _pseudo(real: str) -> bool:
    """Whether a resolved path lies in a kernel pseudo file system (never scanned)."""
    return any(real == root or real.startswith(root + os.sep) for root in _PSEUDO_ROOTS)


def _walk(folder: Path) -> list[Path]:
    """The model files under ``folder``, bounded whatever the folder holds.

    Links are followed (a models folder is often one), but every real directory is
    visited once (a link to a parent cannot loop), nothing under ``/proc``, ``/sys`` or
    ``/dev`` is entered or listed, hidden entries are skipped, and the scan stops at
    :data:`_MAX_DEPTH` levels, :data:`_MAX_DIRS` folders or
    :data:`_MAX_FILES_PER_FOLDER` models. Only regular files count (not FIFOs or
    devices named ``*.gguf``).
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, int]] = [(folder, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            if _pseudo(os.path.realpath(current)):
                continue
            st = current.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if len(seen) > _MAX_DIRS:
                log.warning("%s holds more than %d folders; listing stops", folder, _MAX_DIRS)
                break
            with os.scandir(current) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop in realpath
            continue
        subdirs: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    subdirs.append(Path(entry.path))
                elif _is_model(entry.name) and entry.is_file():
                    if entry.is_symlink() and _pseudo(os.path.realpath(entry.path)):
                        continue
                    found.append(Path(entry.path))
            except OSError:
                continue
            if len(found) >= _MAX_FILES_PER_FOLDER:
                log.warning("%s holds more than %d models; listing stops", folder, len(found))
                return found
        if depth < _MAX_DEPTH:
            stack.extend((d, depth + 1) for d in reversed(subdirs))
    return found


def cached_repos(cache_dir: Path | None = None) -> list[tuple[str, str, Path, list[Path]]]:
    """``(repo, commit, snapshot folder, GGUF files)`` for every cached model repository
    (its ``main`` snapshot when known, else the newest one)."""
    cache = cache_dir or hub_cache_dir()
    if not cache.is_dir():
        return []
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(cache)
    except Exception as exc:  # CacheNotFound, corrupted entries
        log.warning("cannot scan the Hugging Face cache %s: %s", cache, exc)
        return []
    out: list[tuple[str, str, Path, list[Path]]] = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
        main = next((r for r in revisions if "main" in r.refs), revisions[0])
        files = sorted(
            f.file_path for f in main.files if _is_model(f.file_name) and f.file_path.exists()
        )
        if files:
            out.append((repo.repo_id, main.commit_hash, main.snapshot_path, files))
    return out


def cached_summary(cache_dir: Path | None = None) -> list[str]:
    """One line per cached repository: ``owner/repo: a.gguf, b.gguf``."""
    return [
        f"{repo}: {', '.join(p.name for p in files)}"
        for repo, _, _, files in cached_repos(cache_dir)
    ]


def discover(
    folders: Iterable[str | os.PathLike[str]] = (),
    *,
    cache_dir: Path | None = None,
    lm_studio: bool = True,
    bundled: bool = True,
    lm_studio_dirs: Sequence[str] = LM_STUDIO_DIRS,
) -> Discovery:
    """List the GGUF models on this machine with size, architecture, parameters,
    quantization, context length and license (read from their headers).

    :param folders: extra folders to search recursively (``openLlm.models.folders``).
    :param cache_dir: the Hugging Face hub cache (default: :func:`hub_cache_dir`).
    :param lm_studio: search LM Studio's models folders.
    :param bundled: include the models shipped as Python packages.
    :param lm_studio_dirs: LM Studio folders to search (for tests).
    """
    cache = cache_dir or hub_cache_dir()
    models: list[LocalModel] = []
    searched: list[str] = []
    seen: set[str] = set()

    def add(
        path: Path,
        source: str,
        spec: str,
        size: int,
        parts: int = 1,
        complete: bool = True,
        repo: str | None = None,
        revision: str | None = None,
    ) -> None:
        real = os.path.realpath(path)
        if real in seen:
            return
        seen.add(real)
        header, error = _header(path)
        models.append(
            LocalModel(
                path=path,
                source=source,
                spec=spec,
                size=size,
                parts=parts,
                complete=complete,
                repo=repo,
                revision=revision,
                header=header,
                license=local_license(path, header),
                error=error,
            )
        )

    if bundled:
        searched.append("bundled packages")
        from lsp_server.core.paths import data_dir
        from lsp_server.models import bundled as shipped

        try:
            smol = shipped.bundled_smollm2_path()
            add(smol, "bundled", str(smol), _size(smol))
        except OpenLlmError as exc:
            log.info("bundled SmolLM2 unavailable: %s", exc.message)
        gemma = data_dir() / "models" / shipped.GEMMA_FILE_NAME
        if gemma.is_file():
            add(gemma, "bundled", str(gemma), _size(gemma))
    searched.append(str(cache))
    for repo, commit, snapshot, files in cached_repos(cache):
        for first, size, parts, complete in _group(files):
            rel = first.relative_to(snapshot).as_posix()
            add(first, "huggingface", f"{repo}:{rel}", size, parts, complete, repo, commit)
    places: list[tuple[str, Path]] = []
    if lm_studio:
        places += [("lmstudio", Path(d).expanduser()) for d in lm_studio_dirs]
    places += [("folder", Path(os.fspath(f)).expanduser()) for f in folders]
    for source, folder in places:
        searched.append(str(folder))
        if not folder.is_dir():
            continue
        for first, size, parts, complete in _group(_walk(folder)):
            publisher: str | None = None
            if source == "lmstudio":
                parts_of = first.relative_to(folder).parts
                publisher = "/".join(parts_of[:2]) if len(parts_of) >= 3 else None
            add(first, source, str(first), size, parts, complete, publisher)
    return Discovery(tuple(models), tuple(searched), cache)
