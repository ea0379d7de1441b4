"""Downloads into the Hugging Face cache through a fake Hub: progress, resume after a cut
connection or a cancel, checksum verification, gated repositories, offline, disk space."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest

from lsp_server.core.errors import (
    AccessDenied,
    Cancelled,
    HubUnavailable,
    InvalidParams,
    ModelCorrupt,
    ModelNotFound,
    Refused,
    StorageError,
)
from lsp_server.hub.download import (
    CancelToken,
    DownloadProgress,
    download,
    plan_download,
)
from lsp_server.hub.hf import RemoteFile, repo_info
from tests.hub_server import FakeHub, HubFile, hub, tiny_gguf
from tests.unit.test_hardware_select import LAPTOP

__all__ = ["hub"]

REPO = "test/tiny-GGUF"
Q4 = "tiny-Q4_K_M.gguf"
Q8 = "tiny-Q8_0.gguf"


@pytest.fixture
def tiny_hub(hub: FakeHub, tmp_path: Path) -> FakeHub:
    hub.add_repo(
        REPO,
        {
            Q4: tiny_gguf(tmp_path / "q4.gguf", megabytes=3, seed=1),
            Q8: tiny_gguf(tmp_path / "q8.gguf", megabytes=5, seed=2),
        },
    )
    return hub


def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf" / "hub" / "models--test--tiny-GGUF"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plan_by_quant_file_or_fit(tiny_hub: FakeHub) -> None:
    plan = plan_download(f"{REPO}:Q8_0")
    assert [f.name for f in plan.files] == ["README.md", Q8]
    assert plan.spec == f"{REPO}:{Q8}" and plan.group.quant == "Q8_0"
    assert plan_download(f"{REPO}:{Q4}").group.files == (Q4,)
    assert plan_download(f"{REPO}:q4-k-m").group.quant == "Q4_K_M"
    best = plan_download(REPO, hardware=LAPTOP)
    assert best.fit is not None and best.reason.startswith("best fit")
    with pytest.raises(ModelNotFound) as err:
        plan_download(f"{REPO}:Q2_K")
    assert err.value.data["available"] == ["Q4_K_M", "Q8_0"]


def test_download_with_progress_into_the_hf_cache(tiny_hub: FakeHub, tmp_path: Path) -> None:
    seen: list[DownloadProgress] = []
    plan = plan_download(f"{REPO}:Q8_0")
    result = download(plan, on_progress=seen.append)
    commit = tiny_hub.repos[REPO].commit
    pointer = cache(tmp_path) / "snapshots" / commit / Q8
    assert result.path == pointer and pointer.is_symlink()
    blob = pointer.resolve()
    assert blob.parent.name == "blobs" and blob.name == tiny_hub.repos[REPO].files[Q8].sha256
    assert sha256(pointer) == blob.name
    assert (cache(tmp_path) / "refs" / "main").read_text() == commit
    assert (pointer.parent / "README.md").read_text().startswith("---\nlicense: apache-2.0")
    assert not list((cache(tmp_path) / "blobs").glob("*.incomplete"))
    assert seen and seen[-1].percent == 100 and seen[-1].stage == "done"
    done = [p.done for p in seen]
    assert done == sorted(done) and seen[-1].done == plan.total
    assert result.transferred == plan.total and not any(f.cached for f in result.files)
    # huggingface_hub sees it as its own.
    from huggingface_hub import hf_hub_download, scan_cache_dir

    found = hf_hub_download(REPO, Q8, cache_dir=tmp_path / "hf" / "hub", local_files_only=True)
    assert Path(found) == pointer
    repos = {r.repo_id: r for r in scan_cache_dir(tmp_path / "hf" / "hub").repos}
    assert repos[REPO].size_on_disk >= plan.total
    # Again: nothing is transferred.
    before = tiny_hub.served(REPO, Q8)
    again = download(plan)
    assert all(f.cached for f in again.files) and tiny_hub.served(REPO, Q8) == before


def test_resume_after_a_cut_connection(tiny_hub: FakeHub, tmp_path: Path) -> None:
    tiny_hub.cut_after[(REPO, Q8)] = 1_500_000
    result = download(plan_download(f"{REPO}:Q8_0"))
    ranges = tiny_hub.ranges(REPO, Q8)
    assert ranges[0] is None and len(ranges) == 2
    assert ranges[1] is not None and ranges[1].startswith("bytes=")
    start = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 1_500_000
    assert sha256(result.path) == tiny_hub.repos[REPO].files[Q8].sha256


def test_cancel_keeps_nothing_loadable_and_resumes(tiny_hub: FakeHub, tmp_path: Path) -> None:
    tiny_hub.rate[(REPO, Q4)] = 3_000_000  # bytes per second
    plan = plan_download(f"{REPO}:Q4_K_M")
    cancel = CancelToken()
    seen: list[DownloadProgress] = []

    def progress(p: DownloadProgress) -> None:
        seen.append(p)
        if p.file == Q4 and p.done > 1_000_000:
            cancel.cancel()

    with pytest.raises(Cancelled) as err:
        download(plan, on_progress=progress, cancel=cancel)
    assert err.value.data["downloaded"] > 0
    snapshots = cache(tmp_path) / "snapshots"
    assert not list(snapshots.rglob(Q4))  # never a partial file where models load from
    partial = list((cache(tmp_path) / "blobs").glob("*.incomplete"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < 3_000_000
    kept = partial[0].stat().st_size
    # The fake Hub records a GET when its body ends: let the cancelled one end first.
    deadline = time.monotonic() + 60
    while not tiny_hub.ranges(REPO, Q4) and time.monotonic() < deadline:
        time.sleep(0.05)
    del tiny_hub.rate[(REPO, Q4)]
    result = download(plan)
    gguf = next(f for f in result.files if f.name == Q4)
    assert gguf.resumed_from == kept and gguf.transferred == gguf.size - kept
    assert tiny_hub.ranges(REPO, Q4) == [None, f"bytes={kept}-"]
    assert sha256(result.path) == tiny_hub.repos[REPO].files[Q4].sha256


def test_checksum_mismatch_is_rejected(tiny_hub: FakeHub, tmp_path: Path) -> None:
    tiny_hub.repos[REPO].files[Q8].advertised_sha256 = "0" * 64
    with pytest.raises(ModelCorrupt, match="corrupt") as err:
        download(plan_download(f"{REPO}:Q8_0"))
    assert err.value.data["expected"] == "0" * 64
    assert not list(cache(tmp_path).rglob(Q8))
    assert not list((cache(tmp_path) / "blobs").glob("*.incomplete"))


def test_gated_repository(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gated = hub.add_repo(
        "google/gated-GGUF",
        {"g-Q4_0.gguf": tiny_gguf(tmp_path / "g.gguf", license="gemma", megabytes=0.5)},
        license="gemma",
        gated=True,
    )
    plan = plan_download("google/gated-GGUF:Q4_0")
    with pytest.raises(AccessDenied) as err:
        download(plan)
    assert err.value.data["status"] == 401 and "HF_TOKEN" in err.value.message
    monkeypatch.setenv("HF_TOKEN", "hf_no_access")
    with pytest.raises(AccessDenied) as err:
        download(plan)
    assert err.value.data["status"] == 403
    gated.allowed_tokens.add("hf_granted")
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    assert download(plan).path.is_file()


def test_offline_during_download(tiny_hub: FakeHub, tmp_path: Path) -> None:
    download(plan_download(f"{REPO}:Q4_K_M"))
    plan = plan_download(f"{REPO}:Q8_0")
    tiny_hub.stop()
    with pytest.raises(HubUnavailable) as err:
        download(plan)
    assert f"{REPO}: {Q4}" in err.value.message  # what is already cached
    assert not list(cache(tmp_path).rglob(Q8))


DiskUsage = namedtuple("DiskUsage", "total used free")


def test_not_enough_disk(tiny_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    import lsp_server.hub.download as module

    plan = plan_download(f"{REPO}:Q8_0")
    monkeypatch.setattr(module.shutil, "disk_usage", lambda path: DiskUsage(10**9, 0, 10**6))
    with pytest.raises(StorageError) as err:
        download(plan)
    assert err.value.data["needBytes"] == plan.total and err.value.data["freeBytes"] == 10**6
    assert "HF_HUB_CACHE" in err.value.message
    assert tiny_hub.served(REPO, Q8) == 0


def test_cancel_from_another_thread(tiny_hub: FakeHub, tmp_path: Path) -> None:
    tiny_hub.rate[(REPO, Q8)] = 2_000_000
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    with pytest.raises(Cancelled):
        download(plan_download(f"{REPO}:Q8_0"), cancel=cancel)
    assert not (cache(tmp_path) / "snapshots").exists() or not list(
        (cache(tmp_path) / "snapshots").rglob(Q8)
    )
    assert os.path.isdir(cache(tmp_path) / "blobs")


# --- what the Hub (or a caller) says is not trusted -------------------------------------------


class _NoChecksum(HubFile):
    """A small file the Hub lists without a usable checksum (no LFS SHA-256, and a blob id
    and ETag that are not hex digests), as a misbehaving mirror or proxy might."""

    @property
    def git_sha1(self) -> str:
        return "not-a-checksum"


def test_a_file_without_a_checksum_is_refused_unless_allowed(
    tiny_hub: FakeHub, tmp_path: Path
) -> None:
    tiny_hub.repos[REPO].files["README.md"] = _NoChecksum(
        "README.md", data=b"---\nlicense: mit\n---\n", lfs=False
    )
    plan = plan_download(f"{REPO}:Q8_0")
    with pytest.raises(Refused) as err:
        download(plan)
    assert err.value.data["reason"] == "noChecksum" and err.value.data["file"] == "README.md"
    assert "allowUnverifiedDownloads" in err.value.message
    assert tiny_hub.served(REPO, "README.md") == 0
    result = download(plan, allow_unverified=True)
    readme = next(f for f in result.files if f.name == "README.md")
    assert readme.path.read_bytes() == b"---\nlicense: mit\n---\n"
    assert readme.sha256 is None  # nothing to verify it against
    assert readme.path.resolve().parent == cache(tmp_path) / "blobs"


@pytest.mark.parametrize(
    "revision", ["../../../../outside", "/etc", "refs/../../x", "a\\b", "main\n", "-rf", ""]
)
def test_revisions_are_names_not_paths(tiny_hub: FakeHub, revision: str) -> None:
    with pytest.raises(InvalidParams):
        plan_download(f"{REPO}:Q8_0", revision=revision)
    plan = dataclasses.replace(plan_download(f"{REPO}:Q8_0"), revision=revision)
    with pytest.raises(InvalidParams):
        download(plan)


@pytest.mark.parametrize(
    "name",
    ["../../../../escape-Q4_0.gguf", "/abs/escape-Q4_0.gguf", "a/./escape-Q4_0.gguf",
     "a\\..\\escape-Q4_0.gguf", "C:escape-Q4_0.gguf", "a//escape-Q4_0.gguf"],
)  # fmt: skip
def test_file_names_from_the_hub_stay_inside_the_cache(
    tiny_hub: FakeHub, tmp_path: Path, name: str
) -> None:
    tiny_hub.repos[REPO].files[name] = HubFile(name, data=b"GGUF" + b"\0" * 64, lfs=True)
    info = repo_info(REPO)
    assert name not in [f.name for f in info.files]  # never listed, never planned
    with pytest.raises(ModelNotFound):
        plan_download(f"{REPO}:Q4_0")
    # A plan made some other way with such a name is refused before any request.
    plan = plan_download(f"{REPO}:Q8_0")
    bad = dataclasses.replace(plan, files=(RemoteFile(name, 68, "a" * 64, None),))
    with pytest.raises(Refused):
        download(bad)
    assert not [p for p in tmp_path.rglob("escape-Q4_0.gguf*")]


def test_an_invalid_commit_from_the_hub_is_refused(tiny_hub: FakeHub, tmp_path: Path) -> None:
    tiny_hub.repos[REPO].commit = "../../../../outside"
    with pytest.raises(HubUnavailable, match="invalid commit"):
        plan_download(f"{REPO}:Q8_0")
    assert not (tmp_path / "outside").exists()


def test_etags_that_are_not_digests_never_name_a_file() -> None:
    from lsp_server.hub.download import _normalize_etag

    assert _normalize_etag('"' + "ab" * 32 + '"') == "ab" * 32
    assert _normalize_etag('W/"' + "AB" * 20 + '"') == "ab" * 20
    for etag in ('"../../x"', '"abc"', '"' + "g" * 64 + '"', "", None):
        assert _normalize_etag(etag) is None
