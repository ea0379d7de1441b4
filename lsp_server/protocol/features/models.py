"""``openLlm/hardware`` and ``openLlm/models/*``: models that fit, downloads, licenses.

The plain-Python half is :mod:`lsp_server.hub` (catalogue, discovery, Hub access,
downloads, licenses) and :mod:`lsp_server.hardware`. This module adds the requests, the
``$/progress`` of downloads (cancellable with ``window/workDoneProgress/cancel``), and
two hooks into the engine, installed by a settings transformer:

* **The license gate.** Before a role loads a model whose license is restricted and not
  accepted (the bundled Gemma 3 270M completion model is under the Gemma terms), the
  role stays ``disabled`` with a ``licenseNotAccepted`` error, and the user is asked
  once per session with ``window/showMessageRequest`` ("Accept" / "Decline" / "Show
  terms"). Accept records it and loads; Decline leaves the role off. Clients without
  ``window.showMessage`` capability get one ``window/showMessage`` saying how to accept.
* **Selections.** ``openLlm/models/select`` picks a role's model; see
  :mod:`lsp_server.hub.selection` for how it combines with settings and presets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lsprotocol import types
from pydantic import Field, model_validator

from lsp_server.config.settings import Settings
from lsp_server.core.errors import (
    Conflict,
    InvalidParams,
    LicenseNotAccepted,
    ModelNotFound,
    OpenLlmError,
)
from lsp_server.engine.resolve import ResolvedModel, resolve_model
from lsp_server.hardware.report import format_bytes
from lsp_server.hardware.select import FitOptions
from lsp_server.hub.gate import ROLE_LABELS, license_message, model_license, require_license
from lsp_server.hub.licenses import LicenseInfo, LicenseStore, license_info
from lsp_server.hub.selection import SelectionStore, role_setting
from lsp_server.protocol import methods
from lsp_server.protocol.features.lifecycle import reapply_settings
from lsp_server.protocol.progress import ProgressReporter
from lsp_server.protocol.server import OpenLlmServer, Params, custom_request

log = logging.getLogger(__name__)

GIB = 1 << 30
ACCEPT, DECLINE, SHOW_TERMS = "Accept", "Decline", "Show terms"
Role = Literal["chat", "completion"]


@dataclass
class _State:
    """Per-server state of this feature."""

    licenses: LicenseStore = field(default_factory=LicenseStore)
    selection: SelectionStore = field(default_factory=SelectionStore)
    asked: set[str] = field(default_factory=set)  # license keys asked (or told) this session
    declined: set[str] = field(default_factory=set)
    downloads: dict[str, Any] = field(default_factory=dict)  # downloadId -> CancelToken


_states: weakref.WeakKeyDictionary[OpenLlmServer, _State] = weakref.WeakKeyDictionary()


def _state(ls: OpenLlmServer) -> _State:
    st = _states.get(ls)
    if st is None:
        st = _states[ls] = _State()
    return st


# ---------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------


class ListParams(Params):
    """Params of ``openLlm/models/list``."""

    folders: list[str] = Field(default_factory=list)
    catalog: bool = True


class FitParams(Params):
    """Params of ``openLlm/models/fit``: a Hub repository or a local file."""

    repo: str | None = None
    path: str | None = None
    revision: str | None = None
    context_length: int | None = Field(None, ge=256, le=1_048_576)
    all_headers: bool = False

    @model_validator(mode="after")
    def _one(self) -> FitParams:
        if (self.repo is None) == (self.path is None):
            raise ValueError("give exactly one of repo or path")
        return self


class DownloadParams(Params):
    """Params of ``openLlm/models/download``."""

    model: str = Field(min_length=3)
    revision: str | None = None
    download_id: str | None = None
    accept_license: bool = False
    select: Role | None = None


class CancelDownloadParams(Params):
    """Params of ``openLlm/models/cancelDownload`` (no id: every download)."""

    download_id: str | None = None


class SelectParams(Params):
    """Params of ``openLlm/models/select`` (``model`` null or empty clears)."""

    role: Role
    model: str | None


class AcceptLicenseParams(Params):
    """Params of ``openLlm/models/acceptLicense``: a license id or a repository."""

    license: str | None = None
    repo: str | None = None

    @model_validator(mode="after")
    def _one(self) -> AcceptLicenseParams:
        if (self.license is None) == (self.repo is None):
            raise ValueError("give exactly one of license or repo")
        return self


# ---------------------------------------------------------------------------
# License prompts
# ---------------------------------------------------------------------------


def can_ask(ls: OpenLlmServer) -> bool:
    """Whether the client declared ``window.showMessage`` (showMessageRequest) support."""
    caps = ls.client_capabilities
    return bool(caps and caps.window and caps.window.show_message is not None)


def _accepted_settings(ls: OpenLlmServer) -> list[str]:
    return list(ls.settings.models.accepted_licenses)


async def _show_terms(ls: OpenLlmServer, info: LicenseInfo) -> None:
    caps = ls.client_capabilities
    if info.url and caps.window and caps.window.show_document and caps.window.show_document.support:
        with contextlib.suppress(Exception):
            await ls.window_show_document_async(
                types.ShowDocumentParams(uri=info.url, external=True)
            )
            return
    ls.show(f"{info.name}: {info.url or 'see the model card'}", types.MessageType.Info)


async def ask_license(ls: OpenLlmServer, info: LicenseInfo, what: str) -> bool:
    """Ask the user to accept ``info`` for ``what`` (showMessageRequest); True if accepted.

    "Show terms" opens the license (``window/showDocument``, else a message with the link)
    and asks again.
    """
    message = (
        f"{what} is under the {info.name} ({info.url or 'see the model card'}). "
        "Do you accept its terms?"
    )
    actions = [types.MessageActionItem(title=t) for t in (ACCEPT, DECLINE, SHOW_TERMS)]
    for _ in range(4):
        try:
            answer = await ls.window_show_message_request_async(
                types.ShowMessageRequestParams(
                    type=types.MessageType.Warning, message=message, actions=actions
                )
            )
        except Exception as exc:  # the client failed the request: treat as no answer
            log.warning("license prompt failed: %s", exc)
            return False
        title = answer.title if answer is not None else None
        if title == ACCEPT:
            return True
        if title != SHOW_TERMS:
            return False
        await _show_terms(ls, info)
    return False


def _record(ls: OpenLlmServer, info: LicenseInfo, via: str, model: str | None) -> None:
    st = _state(ls)
    st.licenses.accept(info.key, via=via, model=model)
    st.declined.discard(info.key)
    st.asked.discard(info.key)


async def _wait_loads(ls: OpenLlmServer, timeout: float = 30) -> None:
    """Wait for roles still loading (so a reapply sees their final state)."""
    if ls.engines is None:
        return
    for state in ls.engines.roles.values():
        if state.state == "loading":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.ready.wait(), timeout)


async def _prompt_for_load(ls: OpenLlmServer, info: LicenseInfo, role: str, model: str) -> None:
    what = f"{model} (the {ROLE_LABELS.get(role, role)} model)"
    if await ask_license(ls, info, what):
        try:
            _record(ls, info, "editor", model)
        except OpenLlmError as exc:
            ls.show(f"Open LLM: {exc.message}", types.MessageType.Error)
            return
        await _wait_loads(ls)
        await reapply_settings(ls)
        return
    _state(ls).declined.add(info.key)
    ls.show(
        f"Open LLM: {what} stays off: its license ({info.name}) was not accepted. Accept it "
        f'later with openLlm/models/acceptLicense or by adding "{info.key}" to '
        "openLlm.models.acceptedLicenses.",
        types.MessageType.Info,
    )


def _blocked(ls: OpenLlmServer, info: LicenseInfo, role: str, model: str) -> None:
    """On the loop: a role was refused a model by the gate. Ask (or tell) once."""
    st = _state(ls)
    if info.key in st.asked or info.key in st.declined:
        return
    st.asked.add(info.key)
    if can_ask(ls):
        ls.run_task(_prompt_for_load(ls, info, role, model), f"license prompt {info.key}")
    else:
        ls.show("Open LLM: " + license_message(info, model, role=role), types.MessageType.Warning)


def _gate(ls: OpenLlmServer, resolved: ResolvedModel, role: str) -> None:
    """The engine's license gate (engine thread): refuse unaccepted restricted licenses."""
    info, model = model_license(resolved.path)
    try:
        require_license(
            info,
            model=model,
            accepted=_accepted_settings(ls),
            store=_state(ls).licenses,
            role=role,
            data={"path": str(resolved.path)},
        )
    except LicenseNotAccepted:
        loop = ls.loop
        if loop is not None and info is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_blocked, ls, info, role, model)
        raise


def models_settings(ls: OpenLlmServer, settings: Settings) -> Settings:
    """Settings transformer: install the license gate; apply ``openLlm/models/select``."""
    manager = ls.manager()
    if manager.license_gate is None:
        manager.license_gate = lambda resolved, role: _gate(ls, resolved, role)
    try:
        effective, notes = _state(ls).selection.apply(settings)
    except OpenLlmError as exc:
        log.warning("model selection ignored: %s", exc.message)
        return settings
    for note in notes:
        log.info("%s", note)
    return effective


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _fit_options(ls: OpenLlmServer, context: int | None) -> FitOptions:
    engine = ls.settings.engine
    desired = context or engine.context_length or 8192
    return FitOptions(
        desired_context=desired,
        min_context=min(desired, 2048),
        ram_headroom=int(ls.settings.models.headroom_gb * GIB),
        kv_cache_type=engine.kv_cache_type,
    )


async def _hardware() -> Any:
    from lsp_server.hardware.probe import probe

    return await asyncio.to_thread(probe)


async def _repo_license(ls: OpenLlmServer, repo: str) -> LicenseInfo:
    """A repository's license: the catalogue, a cached model card, else the Hub."""
    from lsp_server.hub.discovery import cached_repos, local_license
    from lsp_server.hub.hf import parse_ref, repo_info
    from lsp_server.hub.recommend import catalog_entry

    name, _ = parse_ref(repo)
    entry = catalog_entry(name)
    if entry is not None:
        return entry.license_info
    for cached, _, snapshot, files in await asyncio.to_thread(cached_repos):
        if cached.lower() == name.lower():
            info = local_license(files[0]) if files else None
            readme = snapshot / "README.md"
            if info is None and readme.is_file():
                from lsp_server.hub.licenses import readme_file_license

                info = readme_file_license(readme, name)  # bounded, regular files only
            if info is not None:
                return info
    remote = await asyncio.to_thread(repo_info, name)
    if remote.license is None:
        raise ModelNotFound(
            f"{name} declares no license on its model card: there is nothing to accept",
            data={"repo": name},
        )
    return remote.license


def _catalog(local: list[dict[str, Any]], accepted: list[str], store: LicenseStore) -> list[Any]:
    from lsp_server.hub.recommend import CATALOG

    cached = {m["repo"].lower() for m in local if m.get("repo")}
    out = []
    for model in CATALOG:
        entry = model.to_dict()
        lic = model.license_info
        entry["license"] = lic.to_dict(store.is_accepted(lic.key, accepted))
        entry["cached"] = model.repo.lower() in cached
        out.append(entry)
    return out


# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------


def register(ls: OpenLlmServer) -> None:
    """Register ``openLlm/hardware``, ``openLlm/models/*`` and the engine hooks."""
    ls.settings_transformers.append(models_settings)

    @custom_request(ls, methods.HARDWARE)
    async def on_hardware(ls: OpenLlmServer, _p: None) -> dict[str, Any]:
        from lsp_server.hardware.report import format_hardware

        report = await _hardware()
        return {**report.to_dict(), "text": format_hardware(report)}

    @custom_request(ls, methods.MODELS_LIST, ListParams)
    async def on_list(ls: OpenLlmServer, p: ListParams) -> dict[str, Any]:
        from lsp_server.hub.discovery import discover

        cfg = ls.settings.models
        found = await asyncio.to_thread(
            discover, [*cfg.folders, *p.folders], lm_studio=cfg.lm_studio
        )
        st = _state(ls)
        accepted = _accepted_settings(ls)
        keys = sorted({*st.licenses.accepted(), *accepted})
        result = found.to_dict(keys)
        for model in result["models"]:
            lic = model.get("license")
            if lic is not None:
                lic["accepted"] = not lic["restricted"] or st.licenses.is_accepted(
                    lic["key"], accepted
                )
        result["catalog"] = _catalog(result["models"], accepted, st.licenses) if p.catalog else []
        result["selected"] = {role: rec["model"] for role, rec in st.selection.all().items()}
        result["acceptedLicenses"] = sorted(keys)
        if ls.engines is not None:
            result["active"] = {
                role: str(state.resolved.path) if state.resolved else None
                for role, state in ls.engines.roles.items()
            }
        return result

    @custom_request(ls, methods.MODELS_FIT, FitParams)
    async def on_fit(ls: OpenLlmServer, p: FitParams) -> dict[str, Any]:
        from lsp_server.hardware.report import format_fit

        hw = await _hardware()
        options = _fit_options(ls, p.context_length)
        if p.path is not None:
            result = await asyncio.to_thread(_local_fit, Path(p.path).expanduser(), hw, options)
            result["table"] = format_fit(result.pop("_result"))
            return result
        from lsp_server.hub.hf import parse_ref, remote_fit

        repo, _ = parse_ref(p.repo or "")
        fitted = await asyncio.to_thread(
            remote_fit, repo, hw, options, revision=p.revision, all_headers=p.all_headers
        )
        out = fitted.to_dict()
        out["table"] = format_fit(fitted.result)
        if fitted.repo.license is not None:
            lic = fitted.repo.license
            accepted = _state(ls).licenses.is_accepted(lic.key, _accepted_settings(ls))
            out["license"] = lic.to_dict(accepted)
        return out

    @custom_request(ls, methods.MODELS_RECOMMEND)
    async def on_recommend(ls: OpenLlmServer, _p: None) -> dict[str, Any]:
        from lsp_server.hub.recommend import recommend

        hw = await _hardware()
        s = ls.settings
        rec = recommend(
            hw,
            completion_context=s.completion.context_length,
            chat_context=s.engine.context_length or 4096,
            ram_headroom=int(s.models.headroom_gb * GIB),
            kv_cache_type=s.engine.kv_cache_type,
        )
        return {**rec.to_dict(), "text": "\n".join(rec.explanation)}

    @custom_request(ls, methods.MODELS_DOWNLOAD, DownloadParams)
    async def on_download(ls: OpenLlmServer, p: DownloadParams) -> dict[str, Any]:
        return await _download(ls, p)

    @custom_request(ls, methods.MODELS_CANCEL_DOWNLOAD, CancelDownloadParams)
    async def on_cancel_download(ls: OpenLlmServer, p: CancelDownloadParams) -> dict[str, Any]:
        downloads = _state(ls).downloads
        ids = [p.download_id] if p.download_id else list(downloads)
        cancelled = []
        for download_id in ids:
            token = downloads.get(download_id)
            if token is not None:
                token.cancel("cancelled by the client")
                cancelled.append(download_id)
        return {"cancelled": cancelled}

    @custom_request(ls, methods.MODELS_SELECT, SelectParams)
    async def on_select(ls: OpenLlmServer, p: SelectParams) -> dict[str, Any]:
        return await _select(ls, p.role, p.model or None)

    @custom_request(ls, methods.MODELS_ACCEPT_LICENSE, AcceptLicenseParams)
    async def on_accept(ls: OpenLlmServer, p: AcceptLicenseParams) -> dict[str, Any]:
        if p.license is not None:
            info = license_info(p.license, source="request")
            if info is None:
                raise InvalidParams("license is empty")
        else:
            info = await _repo_license(ls, p.repo or "")
        if info.restricted:
            _record(ls, info, "request", p.repo)
        before = _generations(ls)
        if ls.engines is not None:
            await _wait_loads(ls)
            await reapply_settings(ls)
        return {
            "license": info.to_dict(True),
            "accepted": True,
            "reloading": _generations(ls) != before,
        }


def _generations(ls: OpenLlmServer) -> dict[str, int]:
    if ls.engines is None:
        return {}
    return {role: state.generation for role, state in ls.engines.roles.items()}


def _local_fit(path: Path, hw: Any, options: FitOptions) -> dict[str, Any]:
    from lsp_server.hardware.select import CandidateFile, fit
    from lsp_server.hub.discovery import local_license
    from lsp_server.models.gguf import read_gguf

    g = read_gguf(path)
    result = fit(hw, [CandidateFile.from_gguf(g)], options)
    lic = local_license(path)
    return {
        "path": str(path),
        "fit": result.to_dict(),
        "architecture": g.architecture,
        "parameters": g.parameter_count,
        "contextLength": g.context_length,
        "supportsFim": g.supports_fim,
        "license": lic.to_dict() if lic else None,
        "_result": result,
    }


async def _select(ls: OpenLlmServer, role: str, model: str | None) -> dict[str, Any]:
    st = _state(ls)
    resolved: ResolvedModel | None = None
    if model is not None:
        resolved = await asyncio.to_thread(resolve_model, model, role)
    st.selection.set(role, model, role_setting(_base_settings(ls), role))
    before = _generations(ls)
    if ls.engines is not None:
        await _wait_loads(ls)
        await reapply_settings(ls)
    return {
        "role": role,
        "model": model,
        "path": str(resolved.path) if resolved else None,
        "selected": {r: rec["model"] for r, rec in st.selection.all().items()},
        "reloading": _generations(ls) != before,
    }


def _base_settings(ls: OpenLlmServer) -> Settings:
    """The settings a selection overrides: the client's, with the other transformers
    (the active preset) applied, but no selection."""
    effective = ls.settings
    for transform in ls.settings_transformers:
        if transform is models_settings:
            break
        with contextlib.suppress(OpenLlmError):
            effective = transform(ls, effective)
    return effective


def _allow_unverified(ls: OpenLlmServer) -> bool:
    """``openLlm.models.allowUnverifiedDownloads``, honoured only from initializationOptions
    (the user's own configuration): a workspace cannot turn it on."""
    options = ls.initial_options
    models = options.get("models") if isinstance(options, dict) else None
    return isinstance(models, dict) and models.get("allowUnverifiedDownloads") is True


async def _download(ls: OpenLlmServer, p: DownloadParams) -> dict[str, Any]:
    from lsp_server.hub.download import CancelToken, DownloadProgress, download, plan_download

    st = _state(ls)
    download_id = p.download_id or p.model
    if download_id in st.downloads:
        raise Conflict(
            f"a download with id {download_id!r} is already running",
            data={"downloadId": download_id},
        )
    cancel = CancelToken()
    st.downloads[download_id] = cancel
    ls.streams[download_id] = cancel.cancel
    reporter = ProgressReporter(ls, f"Downloading {p.model}", cancellable=True)
    loop = asyncio.get_running_loop()
    try:
        hw = await _hardware() if ":" not in p.model else None
        plan = await asyncio.to_thread(
            plan_download, p.model, hardware=hw, options=_fit_options(ls, None),
            revision=p.revision,
        )  # fmt: skip
        lic = plan.license
        if lic is not None and lic.restricted:
            accepted = st.licenses.is_accepted(lic.key, _accepted_settings(ls))
            if not accepted and p.accept_license:
                _record(ls, lic, "request", plan.repo.repo)
            elif not accepted and can_ask(ls):
                if not await ask_license(ls, lic, plan.repo.repo):
                    st.declined.add(lic.key)
                    require_license(lic, model=plan.repo.repo, store=st.licenses, download=True)
                _record(ls, lic, "editor", plan.repo.repo)
            elif not accepted:
                require_license(
                    lic, model=plan.repo.repo, accepted=_accepted_settings(ls),
                    store=st.licenses, download=True,
                )  # fmt: skip
        await reporter.begin(f"{plan.group.name} ({format_bytes(plan.total)})")
        token = reporter.token
        if token is not None:
            future = ls.work_done_progress.tokens.get(token)
            if future is not None:
                future.add_done_callback(
                    lambda f: cancel.cancel("cancelled in the editor") if f.cancelled() else None
                )

        def report(progress: DownloadProgress) -> None:
            ls.notify(
                methods.MODELS_DOWNLOAD_PROGRESS,
                {"downloadId": download_id, "repo": plan.repo.repo, **progress.to_dict()},
            )
            pct = progress.percent
            if pct is not None:
                speed = progress.bytes_per_second / (1 << 20)
                reporter.report(
                    pct,
                    f"{format_bytes(progress.done)} of {format_bytes(progress.total)}, "
                    f"{speed:.1f} MiB/s",
                )

        def on_progress(progress: DownloadProgress) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(report, progress)

        try:
            result = await asyncio.to_thread(
                download, plan, on_progress=on_progress, cancel=cancel,
                allow_unverified=_allow_unverified(ls),
            )  # fmt: skip
        except asyncio.CancelledError:
            cancel.cancel("request cancelled")
            raise
        out = result.to_dict()
        out["downloadId"] = download_id
        out["selected"] = None
        if p.select is not None:
            out["selected"] = await _select(ls, p.select, plan.spec)
        reporter.end(f"done: {plan.group.name}")
        return out
    except OpenLlmError as exc:
        reporter.end(exc.message[:200])
        raise
    finally:
        reporter.end()
        st.downloads.pop(download_id, None)
        ls.streams.pop(download_id, None)
