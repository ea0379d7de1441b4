"""Talk to the Hugging Face Hub: repository listings, remote GGUF headers, "will it fit".

Everything here goes through ``huggingface_hub`` (its HTTP session, token and errors):

* :func:`repo_info` — one ``/api/models/{repo}`` call: files with sizes and SHA-256,
  the commit, the model card's license and whether the repository is gated.
* :func:`read_remote_header` — a GGUF header through :class:`huggingface_hub.HfFileSystem`
  with HTTP range reads: a few MB of a multi-GB file.
* :func:`remote_fit` — the fit table of every GGUF file of a repository, from the sizes
  and one header (all quantizations of a model share its architecture).

The endpoint, offline mode and cache folder are read from the environment at call time
(``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE``/``HF_HOME``). Failures become
typed errors: :class:`~lsp_server.core.errors.HubUnavailable` (offline: the message lists
what is cached), :class:`~lsp_server.core.errors.AccessDenied` (gated or private: how to
set a token) and :class:`~lsp_server.core.errors.ModelNotFound`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lsp_server.core.errors import (
    AccessDenied,
    HubUnavailable,
    InvalidParams,
    ModelNotFound,
    OpenLlmError,
)
from lsp_server.hardware.estimate import ModelShape, weight_split
from lsp_server.hardware.probe import HardwareReport
from lsp_server.hardware.select import CandidateFile, FitOptions, FitResult, fit
from lsp_server.hub.discovery import cached_summary, hub_cache_dir
from lsp_server.hub.licenses import LicenseInfo, card_license, license_info
from lsp_server.models.gguf import GgufFile, read_gguf_from
from lsp_server.models.quant import ModelFileGroup, group_files

__all__ = [
    "HEADER_BLOCK_SIZE",
    "RemoteFile",
    "RemoteFit",
    "RemoteHeader",
    "RemoteRepo",
    "http_module",
    "hub_call",
    "hub_endpoint",
    "offline_error",
    "offline_mode",
    "parse_ref",
    "prepare_hub",
    "read_remote_header",
    "remote_fit",
    "repo_info",
    "safe_repo_file",
]

log = logging.getLogger(__name__)

#: Range-read block size for remote headers (fsspec reads ahead one block).
HEADER_BLOCK_SIZE = 1 << 20
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = {"1", "on", "yes", "true"}
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
"""A git commit id (or blob SHA-1) as the Hub writes it."""
SHA256_RE = re.compile(r"[0-9a-f]{64}")
_FILE_PART = re.compile(r"[^\x00-\x1f\x7f/\\:*?\"<>|]{1,255}")


def safe_repo_file(name: object) -> bool:
    """Whether a file name from the Hub is safe to use under a cache folder: relative,
    ``/``-separated parts with no ``.``/``..``/empty part, no backslash, drive colon,
    control or wildcard character, at most 1024 characters."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        return False
    parts = name.split("/")
    return all(p not in (".", "..") and _FILE_PART.fullmatch(p) for p in parts)


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` at call time, else huggingface_hub's endpoint."""
    value = os.environ.get("HF_ENDPOINT")
    if value:
        return value.rstrip("/")
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def http_module() -> Any:
    """The HTTP library huggingface_hub uses (``httpx2`` in 2.x, ``httpx`` in 1.x)."""
    try:
        import httpx2
    except ImportError:  # pragma: no cover - huggingface_hub 1.x
        import httpx as httpx2  # type: ignore[import-not-found,no-redef,unused-ignore]
    return httpx2


def prepare_hub() -> None:
    """Turn off huggingface_hub's telemetry for this process (its user agent fetches an
    agent registry from the Hub): Open LLM LSP talks to the Hub only to do what it was
    asked. Called before every Hub request."""
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_TELEMETRY = True


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) at call time."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``owner/repo[:QUANT|:file.gguf]`` into the repository and the selector.

    :raises InvalidParams: not a repository reference.
    """
    text = ref.strip()
    for prefix in ("hf://", "https://huggingface.co/", "hf.co/"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    repo, _, selector = text.partition(":")
    repo = repo.strip().strip("/")
    if not _REPO.match(repo):
        raise InvalidParams(
            f"{ref!r} is not a Hugging Face repository: use OWNER/REPO, optionally "
            ":QUANT (e.g. Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M) or :FILE.gguf",
            data={"ref": ref},
        )
    return repo, selector.strip() or None


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def offline_error(reason: str, endpoint: str) -> HubUnavailable:
    try:
        cached = cached_summary()
    except Exception:  # never hide the real problem behind a cache scan failure
        cached = []
    where = str(hub_cache_dir())
    if cached:
        listing = "; ".join(cached)
        tail = (
            f"Models already on this machine ({where}): {listing}. Set openLlm.model (or "
            "openLlm.completion.model) to OWNER/REPO:FILE of one of them."
        )
    else:
        tail = f"No models are cached yet ({where}); the bundled models keep working offline."
    return HubUnavailable(
        f"Cannot reach the Hugging Face Hub at {endpoint} ({reason}). {tail}",
        data={"endpoint": endpoint, "cached": cached, "cacheDir": where},
    )


def _token_help(repo: str) -> str:
    return (
        f"Open https://huggingface.co/{repo}, accept its conditions while logged in, then "
        "give this machine a token: set the HF_TOKEN environment variable, or run "
        "`hf auth login` (`huggingface-cli login` with older versions)"
    )


@contextlib.contextmanager
def hub_call(repo: str, what: str, endpoint: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub / HTTP failures inside the block into typed errors.

    :param repo: the repository concerned (for messages).
    :param what: what was being done ("list the files of", "download").
    :param endpoint: the Hub endpoint (for messages).
    """
    from huggingface_hub import errors as hf

    httpx2 = http_module()

    ep = endpoint or hub_endpoint()
    try:
        yield
    except OpenLlmError:
        raise
    except hf.OfflineModeIsEnabled as exc:
        raise offline_error("HF_HUB_OFFLINE is set", ep) from exc
    except hf.GatedRepoError as exc:
        raise AccessDenied(
            f"{repo} is a gated repository: the Hub refused to {what} it without access. "
            f"{_token_help(repo)}.",
            data={"repo": repo, "status": _status(exc), "gated": True},
        ) from exc
    except hf.RevisionNotFoundError as exc:
        raise ModelNotFound(f"{repo} has no such revision on the Hub", data={"repo": repo}) from exc
    except hf.RemoteEntryNotFoundError as exc:
        raise ModelNotFound(
            f"{repo} has no such file on the Hub ({_url(exc)})", data={"repo": repo}
        ) from exc
    except hf.RepositoryNotFoundError as exc:
        if _status(exc) == 401:
            raise AccessDenied(
                f"The Hub refused to {what} {repo} (401): it is private or gated, or it does "
                f"not exist. {_token_help(repo)}.",
                data={"repo": repo, "status": 401, "gated": None},
            ) from exc
        raise ModelNotFound(
            f"There is no model repository {repo} on the Hub: check the name (OWNER/REPO).",
            data={"repo": repo},
        ) from exc
    except hf.HfHubHTTPError as exc:
        status = _status(exc)
        if status in (401, 403):
            raise AccessDenied(
                f"The Hub refused to {what} {repo} ({status}). {_token_help(repo)}.",
                data={"repo": repo, "status": status},
            ) from exc
        raise HubUnavailable(
            f"The Hugging Face Hub could not {what} {repo}: HTTP {status}. Try again later.",
            data={"repo": repo, "status": status, "endpoint": ep},
        ) from exc
    except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.ProxyError) as exc:
        raise offline_error(f"no connection: {_short(exc)}", ep) from exc
    except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as exc:
        raise HubUnavailable(
            f"The connection to the Hugging Face Hub at {ep} failed while trying to {what} "
            f"{repo}: {_short(exc)}. Check the connection and try again.",
            data={"repo": repo, "endpoint": ep},
        ) from exc
    except FileNotFoundError as exc:  # HfFileSystem wraps not-found errors
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, Exception) and not isinstance(cause, FileNotFoundError):
            with hub_call(repo, what, ep):
                raise cause from None
        raise ModelNotFound(f"{repo}: {exc}", data={"repo": repo}) from exc


def _status(exc: Any) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _url(exc: Any) -> str:
    response = getattr(exc, "response", None)
    return str(getattr(response, "url", "")) or "?"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------
# Repository listings
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """A file of a Hub repository."""

    name: str
    size: int | None
    sha256: str | None = None  # LFS files
    blob_id: str | None = None  # git blob id (SHA-1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class RemoteRepo:
    """What the Hub says about a model repository."""

    repo: str
    commit: str | None
    files: tuple[RemoteFile, ...]
    license: LicenseInfo | None
    gated: bool | str = False
    card: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def gguf_files(self) -> list[RemoteFile]:
        """The model files (``.gguf``, vision projectors left out)."""
        return [f for f in self.files if f.name.lower().endswith(".gguf")
                and "mmproj" not in f.name.lower()]  # fmt: skip

    def groups(self) -> list[ModelFileGroup]:
        """GGUF files grouped into models (split shards merged), best quality last."""
        return group_files([(f.name, f.size or 0) for f in self.gguf_files])

    def file(self, name: str) -> RemoteFile | None:
        """The file called ``name``."""
        return next((f for f in self.files if f.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "repo": self.repo,
            "commit": self.commit,
            "gated": self.gated,
            "license": self.license.to_dict() if self.license else None,
            "files": [f.to_dict() for f in self.gguf_files],
        }


def repo_info(
    repo: str,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> RemoteRepo:
    """List a model repository: files (sizes, SHA-256), commit, license, gating.

    :param repo: ``owner/repo``.
    :param revision: branch, tag or commit (default ``main``).
    :param endpoint: the Hub (default: ``HF_ENDPOINT`` or huggingface.co).
    :param token: a token, or None for ``HF_TOKEN`` / the cached login.
    :raises HubUnavailable: offline, the Hub failed, or it answered an invalid commit id.
    :raises AccessDenied: private or gated without access.
    :raises ModelNotFound: no such repository.

    What the Hub says is checked: files with unsafe names (``..``, absolute, control
    characters) are left out, and checksums that are not hex digests are dropped.
    """
    ep = endpoint or hub_endpoint()
    if offline_mode():
        raise offline_error("HF_HUB_OFFLINE is set", ep)
    prepare_hub()
    from huggingface_hub import HfApi

    with hub_call(repo, "list the files of", ep):
        info = HfApi(endpoint=ep, token=token).model_info(
            repo, revision=revision, files_metadata=True
        )
    files = []
    for s in info.siblings or []:
        if not safe_repo_file(s.rfilename):  # never a path outside the cache folder
            log.warning("%s: skipping a file with an unsafe name from the Hub", repo)
            continue
        sha = s.lfs.sha256 if s.lfs is not None else None
        size = s.size if s.size is not None else (s.lfs.size if s.lfs is not None else None)
        files.append(
            RemoteFile(
                s.rfilename,
                size if isinstance(size, int) and size >= 0 else None,
                sha if isinstance(sha, str) and SHA256_RE.fullmatch(sha) else None,
                s.blob_id
                if isinstance(s.blob_id, str) and COMMIT_RE.fullmatch(s.blob_id)
                else None,
            )
        )
    commit = info.sha if isinstance(info.sha, str) and COMMIT_RE.fullmatch(info.sha) else None
    if info.sha is not None and commit is None:
        raise HubUnavailable(
            f"The Hub at {ep} answered an invalid commit id for {repo}.",
            data={"repo": repo, "endpoint": ep, "reason": "badResponse"},
        )
    card: dict[str, Any] = {}
    if info.card_data is not None:
        card = dict(info.card_data.to_dict())  # type: ignore[no-untyped-call]
    lic = card_license(card, repo)
    if lic is None:
        tag = next((t for t in info.tags or [] if t.startswith("license:")), None)
        lic = license_info(tag.split(":", 1)[1], repo=repo, source="card") if tag else None
    return RemoteRepo(repo, commit, tuple(files), lic, info.gated or False, card)


# ---------------------------------------------------------------------------------------
# Remote headers
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteHeader:
    """A GGUF header read with range requests."""

    repo: str
    file: str
    gguf: GgufFile
    size: int


def read_remote_header(
    repo: str,
    filename: str,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> RemoteHeader:
    """Read the header of a remote GGUF file without downloading it (HTTP range reads
    through :class:`huggingface_hub.HfFileSystem`, :data:`HEADER_BLOCK_SIZE` at a time).

    :raises HubUnavailable, AccessDenied, ModelNotFound: see :func:`repo_info`.
    :raises ModelInvalid, ModelCorrupt: the file is not a valid GGUF.
    """
    ep = endpoint or hub_endpoint()
    if offline_mode():
        raise offline_error("HF_HUB_OFFLINE is set", ep)
    prepare_hub()
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem(endpoint=ep, token=token, skip_instance_cache=True)
    where = f"hf://{repo}/{filename}"
    with (
        hub_call(repo, "read", ep),
        fs.open(f"{repo}/{filename}", "rb", revision=revision, block_size=HEADER_BLOCK_SIZE) as f,
    ):
        size = int(f.size)
        g = read_gguf_from(f, file_size=size, path=where, check_size=False)
    log.info("read the header of %s: %d bytes of %d", where, g.header_size, size)
    return RemoteHeader(repo, filename, g, size)


# ---------------------------------------------------------------------------------------
# Remote fit
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFit:
    """A repository's fit table for this machine."""

    repo: RemoteRepo
    result: FitResult
    groups: tuple[ModelFileGroup, ...]
    headers: tuple[RemoteHeader, ...]

    @property
    def choice(self) -> ModelFileGroup | None:
        """The chosen file group."""
        if self.result.choice is None:
            return None
        return next((g for g in self.groups if g.name == self.result.choice.file), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        h = self.headers[0].gguf if self.headers else None
        choice = self.result.choice
        return {
            **self.repo.to_dict(),
            "fit": self.result.to_dict(),
            "groups": [
                {
                    "name": g.name,
                    "files": list(g.files),
                    "quant": g.quant,
                    "size": g.size,
                    "complete": g.complete,
                }
                for g in self.groups
            ],
            "headersRead": [
                {"file": x.file, "headerBytes": x.gguf.header_size, "fileSize": x.size}
                for x in self.headers
            ],
            "architecture": h.architecture if h else None,
            "parameters": h.parameter_count if h else None,
            "contextLength": h.context_length if h else None,
            "supportsFim": h.supports_fim if h else None,
            "spec": f"{self.repo.repo}:{choice.quant}" if choice and choice.quant else None,
        }


def _representative(groups: list[ModelFileGroup]) -> ModelFileGroup:
    """The group whose header stands for all: Q4_K_M if present, else the median size."""
    for quant in ("Q4_K_M", "Q4_0", "Q5_K_M"):
        for g in groups:
            if g.quant == quant and g.complete:
                return g
    ordered = sorted(groups, key=lambda g: g.size or 0)
    return ordered[len(ordered) // 2]


def remote_fit(
    repo: str,
    hardware: HardwareReport,
    options: FitOptions | None = None,
    *,
    revision: str | None = None,
    all_headers: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> RemoteFit:
    """Classify every GGUF file of ``repo`` for ``hardware`` without downloading.

    One header (Q4_K_M, else the median file) is read with range requests; its
    architecture stands for the other quantizations, whose layer sizes are scaled from
    their file sizes. ``all_headers`` reads every file's header instead (exact, slower).

    :raises ModelNotFound: the repository has no GGUF file.
    """
    info = repo_info(repo, revision, endpoint=endpoint, token=token)
    groups = info.groups()
    if not groups:
        raise ModelNotFound(
            f"{repo} holds no GGUF file (files: "
            f"{', '.join(f.name for f in info.files[:12]) or 'none'}); llama.cpp needs a "
            "GGUF conversion: look for a repository named ...-GGUF",
            data={"repo": repo},
        )
    rev = info.commit or revision
    wanted = groups if all_headers else [_representative(groups)]
    headers = [
        read_remote_header(repo, g.files[0], revision=rev, endpoint=endpoint, token=token)
        for g in wanted
    ]
    base = headers[0].gguf
    shape = ModelShape.from_gguf(base)
    by_file = {h.file: h for h in headers}
    candidates: list[CandidateFile] = []
    for g in groups:
        exact = by_file.get(g.files[0])
        if exact is not None and len(g.files) == 1:
            candidates.append(CandidateFile.from_gguf(exact.gguf, name=g.name))
            continue
        candidates.append(
            CandidateFile(
                name=g.name,
                size=g.size or 0,
                quant=g.quant,
                shape=ModelShape.from_gguf(exact.gguf) if exact else shape,
                split=weight_split(exact.gguf) if exact else None,
                parameter_count=base.parameter_count or None,
                qat=g.qat,
            )
        )
    result = fit(hardware, candidates, options)
    return RemoteFit(info, result, tuple(groups), tuple(headers))
