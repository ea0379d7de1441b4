"""openLlm/hardware and openLlm/models/* on real server processes, the Hub played by a
fake one on 127.0.0.1 (HF_ENDPOINT): fit, download with $/progress, cancel, select,
errors, and the license gate of the bundled Gemma 3 270M completion model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient
from pytest_lsp import LanguageClient as LspClient

from lsp_server.demo.client import plain
from lsp_server.models.bundled import GEMMA_FILE_NAME, bundled_gemma_path
from tests.hub_server import FakeHub, hub, hub_env, tiny_gguf
from tests.lsp.conftest import request

__all__ = ["hub"]

SMOL = "test/SmolLM2-135M-Instruct-GGUF"
SMOL_FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"
NO_COMPLETION = {"completion": {"enabled": False}, "engine": {"batchSize": 64}}
PROGRESS_CAPS = types.WindowClientCapabilities(work_done_progress=True)
ASKING_CAPS = types.WindowClientCapabilities(
    work_done_progress=True,
    show_message=types.ShowMessageRequestClientCapabilities(),
    show_document=types.ShowDocumentClientCapabilities(support=True),
)


class Session:
    """A server process and everything it sent the client."""

    def __init__(self, client: LanguageClient, answers: list[str]) -> None:
        self.client = client
        self.answers = answers
        self.asked: list[str] = []
        self.messages: list[types.ShowMessageParams] = []
        self.documents: list[str] = []
        self.progress: list[tuple[str, dict[str, Any]]] = []
        self.downloads: list[dict[str, Any]] = []
        self.stderr: list[str] = []

    async def request(self, method: str, params: Any = None) -> Any:
        return plain(await self.client.protocol.send_request_async(method, params or {}))

    async def error(self, method: str, params: Any) -> JsonRpcException:
        with pytest.raises(JsonRpcException) as info:
            await self.client.protocol.send_request_async(method, params)
        return info.value

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("openLlm/status")
        return result

    async def until(self, check: Any, timeout: float = 120) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = await self.status()
            if check(status):
                return status
            if loop.time() > deadline:
                raise AssertionError(f"timed out: {json.dumps(status)[:2000]}")
            await asyncio.sleep(0.1)


def share_bundled_gemma(data_dir: Path, gemma: Path) -> None:
    """Point a fresh data directory at the session's assembled Gemma (no 250 MB copy)."""
    target = data_dir / "models" / GEMMA_FILE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(gemma)


@pytest.fixture(scope="session")
def gemma() -> Path:
    return bundled_gemma_path()


@contextlib.asynccontextmanager
async def server(
    fake: FakeHub,
    tmp_path: Path,
    options: dict[str, Any],
    window: types.WindowClientCapabilities = PROGRESS_CAPS,
    answers: list[str] | None = None,
) -> AsyncIterator[Session]:
    client = LanguageClient("models-tests", "0")
    session = Session(client, list(answers or []))

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_show(ls: LanguageClient, params: types.ShowMessageParams) -> None:
        session.messages.append(params)

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def on_ask(ls: LanguageClient, params: types.ShowMessageRequestParams) -> Any:
        session.asked.append(params.message)
        if not session.answers:
            return None
        return types.MessageActionItem(title=session.answers.pop(0))

    @client.feature(types.WINDOW_SHOW_DOCUMENT)
    def on_document(ls: LanguageClient, params: types.ShowDocumentParams) -> Any:
        session.documents.append(params.uri)
        return types.ShowDocumentResult(success=True)

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def on_create(ls: LanguageClient, params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def on_progress(ls: LanguageClient, params: types.ProgressParams) -> None:
        session.progress.append((str(params.token), plain(params.value)))

    @client.feature("openLlm/models/downloadProgress")
    def on_download(ls: LanguageClient, params: Any) -> None:
        session.downloads.append(plain(params))

    for method in ("openLlm/statusChanged", types.WINDOW_LOG_MESSAGE):
        client.feature(method)(lambda ls, params: None)

    await client.start_io(sys.executable, "-m", "lsp_server", env=hub_env(fake, tmp_path))
    process = client._server  # type: ignore[attr-defined]

    async def drain() -> None:
        while line := await process.stderr.readline():
            session.stderr.append(line.decode(errors="replace"))

    drainer = asyncio.ensure_future(drain())
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(window=window),
            initialization_options={"openLlm": options},
        )
    )
    client.initialized(types.InitializedParams())
    try:
        yield session
    finally:
        if process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.shutdown_async(None), 30)
                client.exit(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 30)  # type: ignore[no-untyped-call]
        if process.returncode is None:
            process.kill()
        await drainer


def chat_ready(status: dict[str, Any]) -> bool:
    return bool(status["roles"]["chat"]["state"] == "ready")


# ---------------------------------------------------------------------------------------


async def test_hardware_recommend_and_list(client: LspClient) -> None:
    hw = await request(client, "openLlm/hardware")
    assert hw["totalMemory"] > 0 and hw["logicalCores"] >= 1 and "Memory" in hw["text"]
    rec = await request(client, "openLlm/models/recommend")
    assert rec["completion"]["model"]["fim"] and rec["chat"]["spec"]
    assert "Completion:" in rec["text"]
    listing = await request(client, "openLlm/models/list")
    bundled = [m for m in listing["models"] if m["source"] == "bundled"]
    assert any(m["architecture"] == "llama" and m["license"]["id"] == "apache-2.0" for m in bundled)
    assert listing["catalog"] and "gemma" in listing["acceptedLicenses"]
    gemma_27b = next(c for c in listing["catalog"] if c["id"] == "gemma-3-27b")
    assert gemma_27b["license"]["accepted"] is True  # the session accepts "gemma" up front


async def test_fit_download_and_select(hub: FakeHub, tmp_path: Path, smollm2_path: Path) -> None:
    hub.add_repo(SMOL, {SMOL_FILE: smollm2_path})
    async with server(hub, tmp_path, NO_COMPLETION) as s:
        fit = await s.request("openLlm/models/fit", {"repo": SMOL, "contextLength": 2048})
        assert fit["fit"]["choice"]["file"] == SMOL_FILE and "Runs on" in fit["table"]
        assert fit["headersRead"][0]["fileSize"] == smollm2_path.stat().st_size
        assert 0 < hub.served(SMOL, SMOL_FILE) < smollm2_path.stat().st_size / 20
        await s.until(chat_ready)

        result = await s.request(
            "openLlm/models/download", {"model": f"{SMOL}:Q4_1", "select": "chat"}
        )
        path = Path(result["path"])
        assert path.is_file() and str(tmp_path / "hf" / "hub") in str(path)
        assert path.parent.parent.name == "snapshots" and result["spec"] == f"{SMOL}:{SMOL_FILE}"
        assert result["files"][-1]["sha256"] == hub.repos[SMOL].files[SMOL_FILE].sha256
        token, begin = next(
            (t, v) for t, v in s.progress if v.get("title") == f"Downloading {SMOL}:Q4_1"
        )
        steps = [v for t, v in s.progress if t == token]
        assert begin["cancellable"] is True and steps[-1]["kind"] == "end"
        reports = [v for v in steps if v["kind"] == "report"]
        assert reports and reports[-1]["percentage"] == 100 and "MiB/s" in reports[-1]["message"]
        assert s.downloads and s.downloads[-1]["percent"] == 100
        assert s.downloads[-1]["downloadId"] == f"{SMOL}:Q4_1"
        assert {"bytesPerSecond", "downloaded", "total"} <= set(s.downloads[-1])

        assert result["selected"]["selected"] == {"chat": f"{SMOL}:{SMOL_FILE}"}
        status = await s.until(
            lambda st: chat_ready(st) and st["roles"]["chat"].get("path") == str(path)
        )
        assert status["roles"]["chat"]["source"] == "huggingface"
        listing = await s.request("openLlm/models/list")
        cached = [m for m in listing["models"] if m["source"] == "huggingface"]
        assert [m["spec"] for m in cached] == [f"{SMOL}:{SMOL_FILE}"]
        assert listing["selected"] == {"chat": f"{SMOL}:{SMOL_FILE}"}

        cleared = await s.request("openLlm/models/select", {"role": "chat", "model": None})
        assert cleared["selected"] == {} and cleared["reloading"]
        await s.until(lambda st: chat_ready(st) and st["roles"]["chat"]["bundled"])
        err = await s.error("openLlm/models/select", {"role": "chat", "model": "nobody/none-GGUF"})
        assert err.code == -32001  # modelNotFound: not on this machine


async def test_cancel_then_resume(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo("test/slow-GGUF", {"slow-Q4_K_M.gguf": tiny_gguf(tmp_path / "s.gguf")})
    hub.rate[("test/slow-GGUF", "slow-Q4_K_M.gguf")] = 400_000
    blobs = tmp_path / "hf" / "hub" / "models--test--slow-GGUF" / "blobs"
    async with server(hub, tmp_path, NO_COMPLETION) as s:
        # 1. window/workDoneProgress/cancel on the progress token.
        pending = asyncio.ensure_future(
            s.request("openLlm/models/download", {"model": "test/slow-GGUF:Q4_K_M"})
        )
        while not any(d["downloaded"] > 300_000 for d in s.downloads):
            await asyncio.sleep(0.05)
        token = next(t for t, v in s.progress if v.get("title", "").startswith("Downloading"))
        s.client.protocol.notify(
            types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token)
        )
        with pytest.raises(JsonRpcException) as err:
            await pending
        assert err.value.code == -32800  # cancelled
        partial = list(blobs.glob("*.incomplete"))
        assert len(partial) == 1
        snapshots = blobs.parent / "snapshots"
        assert not snapshots.exists() or not list(snapshots.rglob("*.gguf"))

        # 2. openLlm/models/cancelDownload.
        s.downloads.clear()
        pending = asyncio.ensure_future(
            s.request(
                "openLlm/models/download", {"model": "test/slow-GGUF:Q4_K_M", "downloadId": "d2"}
            )
        )
        while not any(d["file"].endswith(".gguf") for d in s.downloads):
            await asyncio.sleep(0.05)
        assert next(d for d in s.downloads if d["file"].endswith(".gguf"))["resumedFrom"] > 0
        cancelled = await s.request("openLlm/models/cancelDownload", {"downloadId": "d2"})
        assert cancelled == {"cancelled": ["d2"]}
        with pytest.raises(JsonRpcException):
            await pending

        # 3. Resume to the end.
        del hub.rate[("test/slow-GGUF", "slow-Q4_K_M.gguf")]
        result = await s.request("openLlm/models/download", {"model": "test/slow-GGUF:Q4_K_M"})
        gguf = result["files"][-1]
        assert gguf["resumedFrom"] > 0 and gguf["transferred"] == gguf["size"] - gguf["resumedFrom"]
        assert Path(result["path"]).is_file() and not list(blobs.glob("*.incomplete"))


async def test_download_errors(hub: FakeHub, tmp_path: Path) -> None:
    model = tiny_gguf(tmp_path / "g.gguf", license="gemma", megabytes=0.5)
    hub.add_repo("google/gated-GGUF", {"g-Q4_0.gguf": model}, license="gemma", gated=True)
    hub.add_repo("google/open-gemma-GGUF", {"g-Q4_0.gguf": model}, license="gemma")
    async with server(hub, tmp_path, NO_COMPLETION) as s:
        err = await s.error("openLlm/models/download", {"model": "google/open-gemma-GGUF:Q4_0"})
        assert err.code == -32007 and "Gemma Terms of Use" in err.message  # licenseNotAccepted
        assert hub.served("google/open-gemma-GGUF", "g-Q4_0.gguf") == 0
        gated = {"model": "google/gated-GGUF:Q4_0", "acceptLicense": True}
        err = await s.error("openLlm/models/download", gated)
        assert err.code == -32009 and "HF_TOKEN" in err.message  # accessDenied
        params = {"model": "google/open-gemma-GGUF:Q4_0", "acceptLicense": True}
        done = await s.request("openLlm/models/download", params)
        assert Path(done["path"]).is_file() and done["license"]["key"] == "gemma"
        err = await s.error("openLlm/models/download", {"model": "not a repo"})
        assert err.code == -32602
        hub.stop()
        err = await s.error("openLlm/models/fit", {"repo": "google/open-gemma-GGUF"})
        assert err.code == -32008  # hubUnavailable, with what is cached
        assert "google/open-gemma-GGUF: g-Q4_0.gguf" in err.message


# --- the license gate of the bundled completion model ------------------------------------


async def test_gate_without_prompt_support(hub: FakeHub, tmp_path: Path, gemma: Path) -> None:
    share_bundled_gemma(tmp_path / "data", gemma)
    async with server(hub, tmp_path, {"engine": {"batchSize": 64}}) as s:
        status = await s.until(
            lambda st: chat_ready(st) and st["roles"]["completion"]["state"] == "disabled"
        )
        error = status["roles"]["completion"]["error"]
        assert error["kind"] == "licenseNotAccepted" and "acceptedLicenses" in error["message"]
        assert status["state"] == "ready"  # chat works; nothing is in error
        for _ in range(50):
            if s.messages:
                break
            await asyncio.sleep(0.05)
        warning = [m for m in s.messages if "Gemma Terms of Use" in m.message]
        assert len(warning) == 1 and warning[0].type == types.MessageType.Warning
        assert "openLlm/models/acceptLicense" in warning[0].message
        accepted = await s.request("openLlm/models/acceptLicense", {"license": "gemma"})
        assert accepted["accepted"] and accepted["reloading"]
        status = await s.until(lambda st: st["roles"]["completion"]["state"] == "ready")
        assert status["roles"]["completion"]["model"]["architecture"] == "gemma3"
    record = json.loads((tmp_path / "data" / "state" / "licenses.json").read_text())
    assert record["accepted"]["gemma"]["via"] == "request"


async def test_gate_prompt_show_terms_then_decline(
    hub: FakeHub, tmp_path: Path, gemma: Path
) -> None:
    share_bundled_gemma(tmp_path / "data", gemma)
    options = {"engine": {"batchSize": 64}}
    async with server(hub, tmp_path, options, ASKING_CAPS, ["Show terms", "Decline"]) as s:
        await s.until(
            lambda st: chat_ready(st) and st["roles"]["completion"]["state"] == "disabled"
        )
        for _ in range(100):
            if any("stays off" in m.message for m in s.messages):
                break
            await asyncio.sleep(0.05)
        assert len(s.asked) == 2 and "Gemma Terms of Use" in s.asked[0]
        assert s.documents == ["https://ai.google.dev/gemma/terms"]
        assert any("stays off" in m.message for m in s.messages)
        assert not (tmp_path / "data" / "state" / "licenses.json").exists()
        # Accepting later by repository (the catalogue knows its license: no network).
        done = await s.request(
            "openLlm/models/acceptLicense", {"repo": "google/gemma-3-27b-it-qat-q4_0-gguf"}
        )
        assert done["license"]["key"] == "gemma"
        await s.until(lambda st: st["roles"]["completion"]["state"] == "ready")


async def test_gate_prompt_accept_is_remembered(hub: FakeHub, tmp_path: Path, gemma: Path) -> None:
    share_bundled_gemma(tmp_path / "data", gemma)
    options = {"engine": {"batchSize": 64}}
    async with server(hub, tmp_path, options, ASKING_CAPS, ["Accept"]) as s:
        status = await s.until(
            lambda st: chat_ready(st) and st["roles"]["completion"]["state"] == "ready"
        )
        assert status["roles"]["completion"]["bundled"] is True
        assert len(s.asked) == 1
    record = json.loads((tmp_path / "data" / "state" / "licenses.json").read_text())
    assert record["accepted"]["gemma"]["via"] == "editor"
    async with server(hub, tmp_path, options, ASKING_CAPS, []) as s:
        await s.until(lambda st: chat_ready(st) and st["roles"]["completion"]["state"] == "ready")
        assert s.asked == []  # accepted once, remembered
