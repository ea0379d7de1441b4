"""Download GGUF models from the Hugging Face Hub into the standard Hugging Face cache.

Files land where ``huggingface_hub`` (and llama.cpp, LM Studio's importer, other tools)
expect them: ``<cache>/models--owner--repo/blobs/<sha256>`` with a relative symlink
``snapshots/<commit>/<file>`` and ``refs/main``. On top of ``hf_hub_download`` this adds:

* **Resume**: bytes arrive in ``blobs/<etag>.incomplete``; a connection cut is retried
  with an HTTP ``Range`` from where it stopped, and an interrupted or cancelled download
  continues from that file next time.
* **Verification**: the SHA-256 of LFS files (the Hub's ``lfs.sha256`` / ``X-Linked-Etag``)
  and the git blob SHA-1 of small files are computed while the bytes stream; a mismatch
  deletes the partial file and fails with :class:`~lsp_server.core.errors.ModelCorrupt`.
* **Nothing half-written where models load from**: the blob is renamed into place only
  once complete and verified, and the snapshot entry is created after that.
* **Nothing outside the cache, nothing unverified**: file names, commit ids, ETags and
  revisions from the Hub (or the caller) are validated (hex ids, no ``..``, no absolute
  or backslashed paths) and every path is checked to stay inside the repository's cache
  folder; a file the Hub gives no checksum for is refused unless the caller allows it
  (the user setting ``openLlm.models.allowUnverifiedDownloads``).
* **A free-disk check** before the first byte, **progress** (bytes, percent, speed) to a
  callback, and **cancellation** between two chunks (:class:`CancelToken`).

Planning (which files of a repository to fetch for ``OWNER/REPO[:QUANT|:FILE]``) and the
download are separate steps, so a caller can ask for license acceptance in between.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lsp_server.core.errors import (
    Cancelled,
    HubUnavailable,
    InvalidParams,
    ModelCorrupt,
    ModelNotFound,
    Refused,
    StorageError,
)
from lsp_server.hardware.probe import HardwareReport
from lsp_server.hardware.select import FitOptions
from lsp_server.hub.discovery import hub_cache_dir
from lsp_server.hub.hf import (
    COMMIT_RE,
    SHA256_RE,
    RemoteFile,
    RemoteFit,
    RemoteRepo,
    http_module,
    hub_call,
    hub_endpoint,
    offline_error,
    offline_mode,
    parse_ref,
    prepare_hub,
    remote_fit,
    repo_info,
    safe_repo_file,
)
from lsp_server.hub.licenses import LicenseInfo
from lsp_server.models.quant import ModelFileGroup, parse_quant

__all__ = [
    "CancelToken",
    "DownloadPlan",
    "DownloadProgress",
    "DownloadResult",
    "DownloadedFile",
    "download",
    "plan_download",
]

log = logging.getLogger(__name__)

CHUNK = 256 << 10
RETRIES = 5
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,99}){0,4}")
#: Kept free on the cache's disk beyond the download itself.
DISK_MARGIN = 256 << 20
ProgressCallback = Callable[["DownloadProgress"], None]


class CancelToken:
    """Set from any thread; the download stops before its next chunk."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the download to stop."""
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download stands (sizes in bytes, over all its files)."""

    file: str
    done: int
    total: int | None
    bytes_per_second: float
    file_index: int
    file_count: int
    resumed_from: int = 0
    stage: str = "downloading"  # "verifying-partial", "downloading", "done"

    @property
    def percent(self) -> int | None:
        """0-100, or None when the total is unknown."""
        if not self.total:
            return None
        return max(0, min(100, int(self.done * 100 / self.total)))

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current speed."""
        if not self.total or self.bytes_per_second <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.bytes_per_second)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "file": self.file,
            "downloaded": self.done,
            "total": self.total,
            "percent": self.percent,
            "bytesPerSecond": round(self.bytes_per_second),
            "etaSeconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "fileIndex": self.file_index,
            "fileCount": self.file_count,
            "resumedFrom": self.resumed_from,
            "stage": self.stage,
        }


@dataclass(frozen=True)
class DownloadPlan:
    """The files to fetch for one model, and why."""

    repo: RemoteRepo
    files: tuple[RemoteFile, ...]  # README.md first when present, then the GGUF shards
    group: ModelFileGroup
    reason: str
    fit: RemoteFit | None = None
    revision: str = "main"

    @property
    def license(self) -> LicenseInfo | None:
        """The repository's license (model card)."""
        return self.repo.license

    @property
    def spec(self) -> str:
        """``owner/repo:file.gguf`` of the first model file (for ``openLlm.model``)."""
        return f"{self.repo.repo}:{self.group.files[0]}"

    @property
    def total(self) -> int:
        """Bytes of every file."""
        return sum(f.size or 0 for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "repo": self.repo.repo,
            "commit": self.repo.commit,
            "spec": self.spec,
            "quant": self.group.quant,
            "files": [f.to_dict() for f in self.files],
            "total": self.total,
            "reason": self.reason,
            "license": self.license.to_dict() if self.license else None,
            "gated": self.repo.gated,
        }


@dataclass(frozen=True)
class DownloadedFile:
    """One file now in the cache."""

    name: str
    path: Path  # the snapshot entry
    size: int
    sha256: str | None
    cached: bool  # it was there already: nothing transferred
    resumed_from: int = 0
    transferred: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "cached": self.cached,
            "resumedFrom": self.resumed_from,
            "transferred": self.transferred,
        }


@dataclass(frozen=True)
class DownloadResult:
    """A finished download."""

    plan: DownloadPlan
    files: tuple[DownloadedFile, ...]
    seconds: float
    commit: str

    @property
    def path(self) -> Path:
        """The first model file (what to load)."""
        first = self.plan.group.files[0]
        return next(f.path for f in self.files if f.name == first)

    @property
    def transferred(self) -> int:
        """Bytes received over the network."""
        return sum(f.transferred for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            **self.plan.to_dict(),
            "commit": self.commit,
            "path": str(self.path),
            "files": [f.to_dict() for f in self.files],
            "transferred": self.transferred,
            "seconds": round(self.seconds, 3),
        }


# ---------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------


def check_revision(revision: str | None) -> None:
    """Refuse a revision that is not a plain branch, tag or commit name (it becomes a
    path under ``refs/`` in the cache).

    :raises InvalidParams: ``..``, an absolute path, a backslash or another odd character.
    """
    if revision is None:
        return
    if not _REVISION.fullmatch(revision) or ".." in revision:
        raise InvalidParams(
            "revision must be a branch, tag or commit name (letters, digits, '.', '_', '-' "
            "and '/' between parts)",
            data={"revision": revision[:100]},
        )


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` stays inside ``root`` once ``..`` and ``.`` are resolved."""
    full, base = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    return full == base or full.startswith(base.rstrip(os.sep) + os.sep)


def _norm(text: str) -> str:
    return text.replace("-", "_").replace(".", "_").upper()


def plan_download(
    ref: str,
    *,
    hardware: HardwareReport | None = None,
    options: FitOptions | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> DownloadPlan:
    """Decide which files ``OWNER/REPO[:QUANT|:FILE.gguf]`` means.

    Without a selector the best quantization for ``hardware`` is chosen with
    :func:`~lsp_server.hub.hf.remote_fit` (one header read with range requests).

    :raises InvalidParams: not a repository reference, or not a valid revision.
    :raises ModelNotFound: no such repository, file or quantization (the message lists
        the quantizations available).
    """
    repo, selector = parse_ref(ref)
    check_revision(revision)
    fit_result: RemoteFit | None = None
    if selector is None:
        from lsp_server.hardware.probe import probe

        hw = hardware or probe()
        fit_result = remote_fit(repo, hw, options, revision=revision, endpoint=endpoint,
                                token=token)  # fmt: skip
        info = fit_result.repo
        group = fit_result.choice
        if group is None:
            raise ModelNotFound(
                f"No GGUF file of {repo} fits this machine: {fit_result.result.message} "
                "Name a quantization explicitly (OWNER/REPO:QUANT) to download one anyway.",
                data={"repo": repo, "fit": fit_result.result.to_dict()},
            )
        reason = f"best fit for this machine: {fit_result.result.message}"
    else:
        info = repo_info(repo, revision, endpoint=endpoint, token=token)
        groups = info.groups()
        if selector.lower().endswith(".gguf"):
            hits = [g for g in groups if selector in g.files or g.name == selector]
        else:
            want = parse_quant(selector) or _norm(selector)
            hits = [g for g in groups if g.quant == want]
            if not hits:  # free text: part of the file name
                hits = [g for g in groups if _norm(selector) in _norm(g.name)]
        if not hits:
            quants = sorted({g.quant or g.name for g in groups})
            raise ModelNotFound(
                f"{repo} has no GGUF file matching '{selector}'. Available: "
                f"{', '.join(quants) or 'no GGUF files'}",
                data={"repo": repo, "selector": selector, "available": quants},
            )
        group = next((g for g in hits if g.complete), hits[0])
        reason = f"requested {selector}"
    if not group.complete:
        raise ModelNotFound(
            f"{repo}: the split model {group.name} is missing shards on the Hub",
            data={"repo": repo, "files": list(group.files)},
        )
    wanted = [info.file(name) for name in group.files]
    files = [f for f in wanted if f is not None]
    readme = info.file("README.md")
    if readme is not None:
        files.insert(0, readme)
    return DownloadPlan(info, tuple(files), group, reason, fit_result, revision or "main")


# ---------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------


class _Meter:
    """Aggregated progress over the files of a plan, throttled to ~10 reports/s."""

    def __init__(self, callback: ProgressCallback | None, total: int | None, count: int) -> None:
        self.callback = callback
        self.total = total
        self.count = count
        self.base = 0  # bytes of finished files
        self.file = ""
        self.index = 0
        self.resumed = 0
        self.window: list[tuple[float, int]] = []
        self.received = 0
        self.last = 0.0

    def start(self, name: str, index: int) -> None:
        self.file, self.index, self.resumed = name, index, 0

    def speed(self) -> float:
        now = time.monotonic()
        self.window = [(t, n) for t, n in self.window if now - t <= 3.0]
        if len(self.window) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.window[0], self.window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def report(self, done_in_file: int, stage: str = "downloading", force: bool = False) -> None:
        now = time.monotonic()
        self.window.append((now, self.received))
        if self.callback is None or (not force and now - self.last < 0.1):
            return
        self.last = now
        progress = DownloadProgress(
            self.file, self.base + done_in_file, self.total, self.speed(), self.index,
            self.count, self.resumed, stage,
        )  # fmt: skip
        self.callback(progress)


def download(
    plan: DownloadPlan,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    cache_dir: Path | None = None,
    allow_unverified: bool = False,
) -> DownloadResult:
    """Fetch the files of ``plan`` into the Hugging Face cache (resumable, verified).

    :param plan: from :func:`plan_download`.
    :param on_progress: called with a :class:`DownloadProgress` about 10 times a second.
    :param cancel: stops the download before its next chunk (the partial blob is kept so
        the next download resumes).
    :param allow_unverified: accept a file the Hub gives no checksum for (SHA-256 or git
        blob SHA-1); refused otherwise.
    :raises Cancelled: cancelled.
    :raises ModelCorrupt: a file's checksum does not match the Hub's.
    :raises Refused: a file has no checksum to verify, or a name, commit or ETag from the
        Hub would put it outside the cache.
    :raises StorageError: not enough free disk space, or the cache is not writable.
    :raises HubUnavailable, AccessDenied: the Hub could not be reached or refused.
    """
    ep = endpoint or hub_endpoint()
    if offline_mode():
        raise offline_error("HF_HUB_OFFLINE is set", ep)
    check_revision(plan.revision)
    prepare_hub()
    cache = cache_dir or hub_cache_dir()
    commit = plan.repo.commit or "main"
    if not (COMMIT_RE.fullmatch(commit) or commit == "main"):
        raise Refused(f"{plan.repo.repo}: the Hub gave an invalid commit id", data={})
    started = time.monotonic()
    meter = _Meter(on_progress, plan.total or None, len(plan.files))
    _check_disk(plan, cache)
    done: list[DownloadedFile] = []
    for index, remote in enumerate(plan.files):
        meter.start(remote.name, index)
        result = _download_file(
            plan.repo.repo, remote, commit, plan.revision, cache, ep, token, meter,
            cancel or CancelToken(), allow_unverified,
        )  # fmt: skip
        done.append(result)
        meter.base += result.size
    meter.report(0, "done", force=True)
    return DownloadResult(plan, tuple(done), time.monotonic() - started, commit)


def _storage(repo: str, cache: Path) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def _partial_bytes(plan: DownloadPlan, cache: Path) -> int:
    blobs = _storage(plan.repo.repo, cache) / "blobs"
    total = 0
    for f in plan.files:
        if f.sha256:
            with contextlib.suppress(OSError):
                total += (blobs / f"{f.sha256}.incomplete").stat().st_size
            if (blobs / f.sha256).exists():
                total += f.size or 0
    return total


def _check_disk(plan: DownloadPlan, cache: Path) -> None:
    need = max(0, plan.total - _partial_bytes(plan, cache))
    probe = cache
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if free < need + DISK_MARGIN:
        gib = 1 << 30
        raise StorageError(
            f"Not enough free disk space to download {plan.repo.repo} "
            f"({plan.group.name}): it needs {need / gib:.2f} GiB more (plus "
            f"{DISK_MARGIN >> 20} MiB to spare) but {probe} has {free / gib:.2f} GiB free. "
            "Free some space, or set HF_HUB_CACHE (or HF_HOME) to a larger disk.",
            data={"needBytes": need, "freeBytes": free, "path": str(probe), "reason": "full"},
        )


@contextlib.contextmanager
def _locked(path: Path, cancel: CancelToken) -> Iterator[None]:
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), mode=0o664)
    while True:
        try:
            lock.acquire(timeout=0.5)
            break
        except Timeout:
            if cancel.cancelled:
                raise Cancelled("download cancelled while waiting for another download") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.release()


def _normalize_etag(etag: str | None) -> str | None:
    """The ETag as a lower-case hex digest (SHA-1 or SHA-256), else None: it names a file."""
    if not etag:
        return None
    value = etag.removeprefix("W/").strip('"').lower()
    return value if COMMIT_RE.fullmatch(value) or SHA256_RE.fullmatch(value) else None


def _download_file(
    repo: str,
    remote: RemoteFile,
    commit: str,
    revision: str,
    cache: Path,
    endpoint: str,
    token: str | bool | None,
    meter: _Meter,
    cancel: CancelToken,
    allow_unverified: bool = False,
) -> DownloadedFile:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    storage = _storage(repo, cache)
    if not safe_repo_file(remote.name):
        raise Refused(f"{repo}: the Hub named a file with an unsafe path", data={"repo": repo})
    url = hf_hub_url(repo, remote.name, revision=commit, endpoint=endpoint)
    if cancel.cancelled:
        raise Cancelled(f"download of {repo} cancelled")
    with hub_call(repo, "download", endpoint):
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
    etag = _normalize_etag(meta.etag) or remote.sha256 or remote.blob_id
    real_commit = (
        meta.commit_hash if meta.commit_hash and COMMIT_RE.fullmatch(meta.commit_hash) else commit
    )
    size = meta.size if meta.size is not None else remote.size
    expected_sha = remote.sha256 or (etag if etag and len(etag) == 64 else None)
    expected_sha1 = remote.blob_id if expected_sha is None else None
    if expected_sha1 is None and expected_sha is None and etag and len(etag) == 40:
        expected_sha1 = etag
    if expected_sha is None and expected_sha1 is None:
        if not allow_unverified:
            raise Refused(
                f"The Hub gives no checksum for {repo}/{remote.name}, so the download could "
                "not be verified; it was refused. To download unverified files, set "
                "openLlm.models.allowUnverifiedDownloads in your user settings.",
                data={"repo": repo, "file": remote.name, "reason": "noChecksum"},
            )
        # No hex ETag to name the blob after: a stable name of our own.
        etag = etag or hashlib.sha256(f"{repo}@{real_commit}/{remote.name}".encode()).hexdigest()
    assert etag is not None
    blob = storage / "blobs" / etag
    pointer = storage / "snapshots" / real_commit / Path(*remote.name.split("/"))
    lock = cache / ".locks" / storage.name / f"{etag}.lock"
    if not (_inside(blob, storage) and _inside(pointer, storage) and _inside(lock, cache)):
        raise Refused(f"{repo}/{remote.name} would be written outside the cache", data={})
    with _locked(lock, cancel):
        if not re.fullmatch(r"[0-9a-f]{40}", revision):
            _write_ref(storage, revision, real_commit)
        if pointer.exists() and blob.exists():
            meter.report(size or 0, force=True)
            return DownloadedFile(remote.name, pointer, blob.stat().st_size, expected_sha, True)
        if not blob.exists():
            resumed, transferred, sha = _fetch(
                repo, remote.name, url, meta.location, blob, size, expected_sha, expected_sha1,
                endpoint, token, meter, cancel,
            )  # fmt: skip
        else:
            resumed, transferred, sha = 0, 0, expected_sha
        _link(blob, pointer)
    meter.report(size or blob.stat().st_size, force=True)
    return DownloadedFile(
        remote.name, pointer, blob.stat().st_size, sha, transferred == 0 and resumed == 0,
        resumed, transferred,
    )  # fmt: skip


def _fetch(
    repo: str,
    name: str,
    url: str,
    location: str | None,
    blob: Path,
    size: int | None,
    expected_sha: str | None,
    expected_sha1: str | None,
    endpoint: str,
    token: str | bool | None,
    meter: _Meter,
    cancel: CancelToken,
) -> tuple[int, int, str | None]:
    """Stream ``url`` into ``<blob>.incomplete`` (resuming), verify, rename to ``blob``.

    Returns ``(resumed_from, bytes_transferred, sha256)``.
    """
    from huggingface_hub import get_session, hf_raise_for_status

    httpx2 = http_module()
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    partial = blob.with_name(blob.name + ".incomplete")
    partial.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have > size:
        log.warning("%s is larger than the file on the Hub: starting over", partial)
        partial.unlink()
        have = 0
    if have:
        meter.resumed = have
        meter.report(0, "verifying-partial", force=True)
        with partial.open("rb") as f:
            while block := f.read(4 * CHUNK):
                sha.update(block)
        log.info("resuming %s/%s at %d bytes", repo, name, have)
    resumed_from = have
    target = location or url
    headers = build_hf_headers(token=token)
    if urlparse(target).netloc != urlparse(endpoint).netloc:
        headers.pop("authorization", None)  # a CDN: never send the token off the Hub
        headers.pop("Authorization", None)
    session = get_session()
    timeout = httpx2.Timeout(30.0, connect=10.0)
    attempts = 0
    transferred = 0
    with partial.open("ab") as out:
        while size is None or have < size:
            if cancel.cancelled:
                raise Cancelled(
                    f"download of {repo}/{name} cancelled at {have:,} bytes; the partial file "
                    "is kept and the next download resumes from it",
                    data={"repo": repo, "file": name, "downloaded": have},
                )
            request_headers = dict(headers)
            if have:
                request_headers["Range"] = f"bytes={have}-"
            progressed = False
            failure: Exception | None = None
            try:
                with session.stream(
                    "GET", target, headers=request_headers, timeout=timeout, follow_redirects=True
                ) as response:
                    if response.status_code == 416 and size is not None and have >= size:
                        break
                    if response.status_code >= 400:
                        response.read()
                        with hub_call(repo, "download", endpoint):
                            hf_raise_for_status(response)
                    if have and response.status_code == 200:  # Range ignored: start over
                        out.seek(0)
                        out.truncate()
                        sha = hashlib.sha256()
                        have = resumed_from = 0
                    if size is None:
                        length = response.headers.get("Content-Length")
                        size = have + int(length) if length and length.isdigit() else None
                        meter.total = meter.total or size
                    for chunk in response.iter_bytes(CHUNK):
                        if not chunk:
                            continue
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            raise StorageError(
                                f"cannot write {partial}: {exc.strerror or exc}",
                                data={"path": str(partial), "reason": "full"},
                            ) from exc
                        sha.update(chunk)
                        have += len(chunk)
                        transferred += len(chunk)
                        meter.received += len(chunk)
                        progressed = True
                        meter.report(have)
                        if cancel.cancelled:
                            break
                    if size is None and not cancel.cancelled:
                        size = have
            except httpx2.TransportError as exc:
                failure = exc
            except HubUnavailable as exc:  # 5xx answers
                failure = exc
            if failure is not None:
                attempts = 0 if progressed else attempts + 1
                if attempts > RETRIES:
                    with hub_call(repo, "download", endpoint):
                        raise failure
                log.warning(
                    "download of %s/%s interrupted at %d bytes (%s): resuming",
                    repo, name, have, failure,
                )  # fmt: skip
                out.flush()
                time.sleep(0.05 if progressed else min(4.0, 0.25 * (2**attempts)))
        out.flush()
        os.fsync(out.fileno())
    if size is not None and have != size:
        raise ModelCorrupt(
            f"{repo}/{name}: received {have:,} bytes but the Hub announced {size:,}",
            data={"repo": repo, "file": name},
        )
    digest = sha.hexdigest()
    problem = None
    if expected_sha is not None and digest != expected_sha:
        problem = f"SHA-256 {digest}, the Hub says {expected_sha}"
    elif expected_sha is None and expected_sha1 is not None:
        sha1 = _git_sha1(partial)
        if sha1 != expected_sha1:
            problem = f"git blob SHA-1 {sha1}, the Hub says {expected_sha1}"
    if problem:
        partial.unlink(missing_ok=True)
        raise ModelCorrupt(
            f"The download of {repo}/{name} is corrupt ({problem}); it was deleted. "
            "Download it again; if this repeats, the file on the Hub or a proxy is at fault.",
            data={"repo": repo, "file": name, "sha256": digest, "expected": expected_sha},
        )
    os.replace(partial, blob)
    return resumed_from, transferred, digest if expected_sha is not None else None


def _git_sha1(path: Path) -> str:
    h = hashlib.sha1()
    h.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while block := f.read(4 * CHUNK):
            h.update(block)
    return h.hexdigest()


def _write_ref(storage: Path, ref: str, commit: str) -> None:
    path = storage / "refs" / ref
    try:
        if path.read_text().strip() == commit:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{ref}.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, path)


def _link(blob: Path, pointer: Path) -> None:
    """Create ``pointer`` → ``blob`` (relative symlink, else hard link, else copy) atomically."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), tmp)
    except OSError:
        try:
            os.link(blob, tmp)
        except OSError:
            staging = blob.with_name(f"{blob.name}.{os.getpid()}.copy")
            shutil.copyfile(blob, staging)
            os.replace(staging, tmp)
    os.replace(tmp, pointer)
