"""Load an engine for each role, track its state, reload when its configuration changes.

Roles are ``chat`` and ``completion``; each gets a :class:`~lsp_server.engine.config.LoadConfig`
(mapped from the settings by :mod:`lsp_server.config.engines`). A local role loads a
:class:`~lsp_server.engine.local.LocalEngine`; roles that resolve to the same file share
one :class:`~lsp_server.engine.llama.LlamaModel` (weights are mapped once), each with a
context of its own. A remote role gets a server engine from :mod:`.registry`, and may keep
a local engine standing in while its server is unreachable. Loading runs on the engine
thread; callers wait with :meth:`EngineManager.engine`. Every state change is reported to
``on_status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server import __version__
from lsp_server.core.errors import (
    InsufficientMemory,
    LicenseNotAccepted,
    ModelNotReady,
    OpenLlmError,
)
from lsp_server.engine.base import Engine, ModelInfo
from lsp_server.engine.config import LoadConfig, LocalEngineConfig
from lsp_server.engine.local import LocalEngine
from lsp_server.engine.registry import ServerEngine, create_server_engine
from lsp_server.engine.remote import RemoteConfig, RemoteError
from lsp_server.engine.resolve import ResolvedModel, resolve_model
from lsp_server.engine.worker import EngineWorker

log = logging.getLogger(__name__)

LOAD_PRIORITY = -1
ROLES = ("chat", "completion")


@dataclass
class RoleState:
    """The lifecycle of one role's engine."""

    role: str
    state: str = "idle"  # idle | loading | ready | error | disabled
    progress: float = 0.0
    config: LoadConfig | None = None
    resolved: ResolvedModel | None = None
    local: LocalEngine | None = None
    """The in-process engine: the role's own, or the stand-in of a remote role."""
    server: ServerEngine | None = None
    """The engine on an inference server (remote roles, once connected)."""
    error: OpenLlmError | None = None
    blocked: OpenLlmError | None = None  # disabled until a license is accepted
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    generation: int = 0
    remote_task: asyncio.Task[None] | None = None
    """Connects the remote engine, then checks its health (remote roles)."""
    fallback_active: bool = False
    """Whether :attr:`fallback` serves the role now (its server is unreachable)."""
    fallback_load: asyncio.Future[LocalEngine] | None = None
    fallback_error: OpenLlmError | None = None

    @property
    def remote(self) -> bool:
        """Whether the role is configured to run on a server."""
        return self.config is not None and self.config.remote is not None

    @property
    def engine(self) -> Engine | None:
        """The role's engine (for a remote role, the server's, even while it falls back)."""
        return self.server if self.remote else self.local

    @property
    def fallback(self) -> LocalEngine | None:
        """The local model standing in while a remote role's server is unreachable."""
        return self.local if self.remote else None

    def to_dict(self) -> dict[str, Any]:
        """Return the role's status with camelCase keys."""
        out: dict[str, Any] = {"state": self.state, "progress": round(self.progress * 100)}
        if self.resolved is not None:
            out["path"] = str(self.resolved.path)
            out["source"] = self.resolved.source
            out["bundled"] = self.resolved.bundled
        if self.engine is not None:
            out["model"] = self.engine.info.to_dict()
            stats = self.engine.last_stats
            out["lastStats"] = stats.to_dict() if stats else None
        problem = self.error or self.blocked
        if problem is not None:
            out["error"] = {"kind": problem.kind, "message": problem.message}
        remote = self.config.remote if self.config is not None else None
        out["backend"] = "local"
        if remote is not None:
            out["backend"] = "local-fallback" if self.fallback_active else "remote"
            if self.server is not None:
                out["remote"] = self.server.status()
            else:
                out["remote"] = {"url": remote.display_url, "health": "unknown"}
            if remote.fallback_to_local:
                fb = self.fallback
                err = self.fallback_error
                fb_state = "loading" if self.fallback_load else "idle"
                out["fallback"] = {
                    "active": self.fallback_active,
                    "state": "ready" if fb else "error" if err else fb_state,
                    "model": fb.info.to_dict() if fb else None,
                    "lastStats": fb.last_stats.to_dict() if fb and fb.last_stats else None,
                    "error": {"kind": err.kind, "message": err.message} if err else None,
                }
        return out


def auto_threads() -> int:
    """Threads for ``engine.threads = auto``: leave a core for the editor."""
    from lsp_server.hardware.probe import recommended_threads

    return int(recommended_threads())


class EngineManager:
    """Own the engine thread and one engine per role."""

    def __init__(self, on_status: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.worker = EngineWorker()
        self.roles: dict[str, RoleState] = {role: RoleState(role) for role in ROLES}
        self._on_status = on_status
        self._models: dict[tuple[Path, int, bool], Any] = {}
        self._last_progress_report = 0.0
        self.license_gate: Callable[[ResolvedModel, str], None] | None = None
        """Called on the engine thread once a role's model is resolved, before loading it:
        raises :class:`LicenseNotAccepted` to keep the role disabled (the models feature)."""

    # --- configuration ---
    def apply(self, configs: Mapping[str, LoadConfig | None]) -> list[str]:
        """Start (re)loading every role whose configuration changed; return those roles.

        ``configs`` holds each role's configuration (None: the role is off), as
        :func:`lsp_server.config.engines.engine_configs` maps it from the settings.
        """
        changed = []
        for role, config in configs.items():
            state = self.roles[role]
            if config is None:
                if state.state != "disabled":
                    self._disable(state)
                continue
            if state.config == config and state.state in ("loading", "ready"):
                continue
            changed.append(role)
            self._start_load(state, config)
        return changed

    def _disable(self, state: RoleState) -> None:
        state.generation += 1
        detached = self._drop_remote(state)
        if detached is not None:
            detached.close()
        state.config = None
        state.state = "disabled"
        state.error = None
        state.blocked = None
        old, state.local = state.local, None
        state.ready = asyncio.Event()
        state.ready.set()
        if old is not None:

            def job() -> None:
                old.close()
                self._release_unused()

            self.worker.submit(LOAD_PRIORITY, job)
        self._emit()

    def _start_load(self, state: RoleState, config: LoadConfig) -> None:
        loop = asyncio.get_running_loop()
        state.generation += 1
        generation = state.generation
        state.config = config
        state.state = "loading"
        state.progress = 0.0
        state.error = None
        state.blocked = None
        state.ready = asyncio.Event()
        detached = self._drop_remote(state)
        if detached is not None:
            detached.close()
        self._emit()
        if config.remote is not None:
            state.resolved = None
            local, state.local = state.local, None
            if local is not None:  # this role ran locally until now: free its context

                def free() -> None:
                    local.close()
                    self._release_unused()

                self.worker.submit(LOAD_PRIORITY, free)
            try:
                server = create_server_engine(config.server_kind, config.remote, state.role)
            except OpenLlmError as exc:
                state.state, state.error = "error", exc
                state.ready.set()
                self._emit()
                return
            server.on_health = self._emit
            state.remote_task = loop.create_task(
                self._run_remote(state, generation, server, config.remote)
            )
            return

        def progress(value: float) -> None:
            now = time.monotonic()
            if value < 1.0 and now - self._last_progress_report < 0.1:
                return
            self._last_progress_report = now
            loop.call_soon_threadsafe(self._set_progress, state, generation, value)

        def job() -> tuple[ResolvedModel, LocalEngine]:
            old = state.local
            state.local = None
            if old is not None:
                old.close()
                self._release_unused()
            resolved = resolve_model(config.spec, state.role)
            loop.call_soon_threadsafe(self._set_resolved, state, generation, resolved)
            if self.license_gate is not None:
                self.license_gate(resolved, state.role)
            engine = self._load(resolved, config.engine, progress)
            return resolved, engine

        future = self.worker.submit(LOAD_PRIORITY, job)
        future.add_done_callback(
            lambda fut: loop.call_soon_threadsafe(self._finish_load, state, generation, fut)
        )

    def _set_progress(self, state: RoleState, generation: int, value: float) -> None:
        if state.generation == generation and state.state == "loading":
            state.progress = value
            self._emit()

    def _set_resolved(self, state: RoleState, generation: int, resolved: ResolvedModel) -> None:
        if state.generation == generation:
            state.resolved = resolved

    def _finish_load(self, state: RoleState, generation: int, fut: Any) -> None:
        exc = fut.exception()
        if state.generation != generation:
            if exc is None:  # superseded while loading: free it
                _, engine = fut.result()
                self.worker.submit(LOAD_PRIORITY, engine.close)
            return
        if exc is None:
            state.resolved, state.local = fut.result()
            state.state = "ready"
            state.progress = 1.0
            log.info("%s model ready: %s", state.role, state.local.info.name)
        elif isinstance(exc, LicenseNotAccepted):
            state.state = "disabled"
            state.blocked = exc
            log.warning("%s model not loaded: %s", state.role, exc.message)
        else:
            state.state = "error"
            state.error = (
                exc
                if isinstance(exc, OpenLlmError)
                else OpenLlmError(f"loading the model failed: {exc}")
            )
            log.error("%s model failed to load: %s", state.role, state.error.message)
        state.ready.set()
        self._emit()

    # --- loading (engine thread) ---
    def _load(
        self, resolved: ResolvedModel, cfg: LocalEngineConfig, progress: Callable[[float], None]
    ) -> LocalEngine:
        from lsp_server.engine.llama import LlamaContext, LlamaModel
        from lsp_server.engine.native import supports_gpu_offload
        from lsp_server.models.gguf import read_gguf

        gguf = read_gguf(resolved.path)
        gpu_layers = _gpu_layers(cfg.gpu_layers, supports_gpu_offload())
        n_ctx = cfg.context_length or int(gguf.context_length or 4096)
        _check_memory(resolved.path, gguf, n_ctx, cfg.kv_cache_type, gpu_layers)
        key = (resolved.path, gpu_layers, cfg.use_mmap)
        model = self._models.get(key)
        if model is None:
            model = LlamaModel(
                resolved.path, gpu_layers=gpu_layers, use_mmap=cfg.use_mmap, progress=progress
            )
            self._models[key] = model
        threads = cfg.threads if isinstance(cfg.threads, int) else auto_threads()
        context = LlamaContext(
            model,
            n_ctx=n_ctx,
            n_batch=cfg.batch_size,
            threads=threads,
            flash_attention=cfg.flash_attention,
            kv_cache_type=cfg.kv_cache_type,
        )
        info = ModelInfo(
            name=gguf.name or resolved.path.stem,
            path=str(resolved.path),
            architecture=gguf.architecture or "",
            parameters=model.n_params,
            quantization=gguf.quantization or "",
            size_bytes=resolved.path.stat().st_size,
            context_length=context.n_ctx,
            trained_context_length=model.n_ctx_train,
            license=gguf.license or "",
            has_chat_template=model.chat_template() is not None,
            fim=model.fim_tokens(),
            threads=threads,
            gpu_layers=gpu_layers,
        )
        return LocalEngine(model, context, self.worker, info)

    def _release_unused(self) -> None:
        in_use = {id(s.local.model) for s in self.roles.values() if s.local is not None}
        for key, model in list(self._models.items()):
            if id(model) not in in_use:
                model.close()
                del self._models[key]

    # --- remote roles ---
    def _drop_remote(self, state: RoleState) -> ServerEngine | None:
        """Stop a role's server engine and free its local fallback; return the engine."""
        if state.remote_task is not None:
            state.remote_task.cancel()
            state.remote_task = None
        detached, state.server = state.server, None
        fallback = state.fallback
        if fallback is not None:
            state.local = None
        state.fallback_active = False
        state.fallback_load = None
        state.fallback_error = None
        if fallback is not None:

            def job() -> None:
                fallback.close()
                self._release_unused()

            self.worker.submit(LOAD_PRIORITY, job)
        return detached

    async def _run_remote(
        self, state: RoleState, generation: int, engine: ServerEngine, remote: RemoteConfig
    ) -> None:
        """Connect a remote role, then check the server's health every interval."""
        try:
            await engine.connect()
        except RemoteError as exc:
            if exc.reason == "badConfig":  # nothing works until the user settings change
                if state.generation == generation:
                    state.state, state.error = "error", exc
                    state.ready.set()
                    self._emit()
                await engine.aclose()
                return
            log.warning("%s server: %s", state.role, exc.message)
        if state.generation != generation:
            await engine.aclose()
            return
        state.server = engine
        state.state = "ready"
        state.progress = 1.0
        state.ready.set()
        log.info("%s served by %s (%s)", state.role, engine.url, engine.health)
        self._emit()
        if remote.fallback_to_local and engine.health == "unreachable" and engine.health_error:
            with contextlib.suppress(OpenLlmError):
                await self.fall_back(state.role, engine.health_error)
        while state.generation == generation:
            interval = remote.health_interval_s
            if state.fallback_active:  # come back as soon as the server does
                interval = min(interval or 10.0, 10.0)
            await asyncio.sleep(interval or 10.0)
            if not interval or state.generation != generation:
                continue
            if await engine.probe() and state.fallback_active:
                state.fallback_active = False
                log.info("%s server %s is back: using it again", state.role, engine.url)
                self._emit()

    async def fall_back(self, role: str, error: OpenLlmError) -> LocalEngine:
        """Serve ``role`` locally while its remote server is unreachable (re-raise ``error``
        when the role has no local fallback); the status shows ``local-fallback``."""
        state = self.roles[role]
        config = state.config
        if config is None or config.remote is None or not config.remote.fallback_to_local:
            raise error
        generation = state.generation
        if state.fallback is None:
            load = state.fallback_load or self._start_fallback(state)
            await asyncio.shield(load)
        if state.generation != generation or state.fallback is None:
            raise error
        if not state.fallback_active:
            state.fallback_active = True
            log.warning("%s: %s Using the local model until it is back.", role, error.message)
            self._emit()
        return state.fallback

    def _start_fallback(self, state: RoleState) -> asyncio.Future[LocalEngine]:
        config = state.config
        assert config is not None
        generation = state.generation
        role = state.role

        def job() -> LocalEngine:
            resolved = resolve_model(config.spec, role)
            if self.license_gate is not None:
                self.license_gate(resolved, role)
            return self._load(resolved, config.engine, lambda _value: None)

        load = asyncio.wrap_future(self.worker.submit(LOAD_PRIORITY, job))
        state.fallback_load = load
        self._emit()

        def done(fut: asyncio.Future[LocalEngine]) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if state.generation != generation:
                if exc is None:
                    self.worker.submit(LOAD_PRIORITY, fut.result().close)
                return
            if exc is None:
                state.local, state.fallback_error = fut.result(), None
                log.info("%s local fallback ready: %s", role, state.local.info.name)
            else:
                state.fallback_load = None  # try again on the next failure
                state.fallback_error = (
                    exc if isinstance(exc, OpenLlmError) else OpenLlmError(str(exc))
                )
                log.error("%s local fallback failed: %s", role, state.fallback_error.message)
            self._emit()

        load.add_done_callback(done)
        return load

    # --- access ---
    async def engine(self, role: str = "chat", timeout: float | None = None) -> Engine:
        """Wait for ``role``'s engine; raise its load error or :class:`ModelNotReady`."""
        state = self.roles[role]
        if state.state == "idle":
            raise ModelNotReady("no model is configured yet: the server is still initializing")
        if state.state == "disabled":
            if state.blocked is not None:
                raise type(state.blocked)(state.blocked.message, data=state.blocked.data)
            raise ModelNotReady(f"the {role} model is turned off in the settings")
        try:
            if not state.ready.is_set():  # (wait_for(..., 0) would time out even when set)
                await asyncio.wait_for(state.ready.wait(), timeout)
        except TimeoutError as exc:
            raise ModelNotReady(f"the {role} model is still loading") from exc
        if state.error is not None:
            raise type(state.error)(state.error.message, data=state.error.data)
        if state.engine is None:
            raise ModelNotReady(f"the {role} model is reloading; try again")
        if state.fallback_active and state.fallback is not None:
            return state.fallback  # the remote server is unreachable
        return state.engine

    def status(self) -> dict[str, Any]:
        """Return the whole status (``openLlm/status`` result)."""
        roles = {name: st.to_dict() for name, st in self.roles.items()}
        chat = self.roles["chat"]
        states = {st.state for st in self.roles.values()}
        overall = next(
            (s for s in ("error", "loading", "idle", "ready") if s in states), "disabled"
        )
        last = chat.engine.last_stats if chat.engine else None
        problem = chat.error or chat.blocked
        return {
            "version": __version__,
            "state": overall,
            "progress": roles["chat"]["progress"],
            "message": problem.message if problem else "",
            "model": roles["chat"].get("model"),
            "bundled": bool(chat.resolved and chat.resolved.bundled),
            "threads": chat.engine.info.threads if chat.engine else None,
            "tokensPerSecond": round(last.tokens_per_s, 2) if last else None,
            "roles": roles,
        }

    def _emit(self) -> None:
        if self._on_status is not None:
            try:
                self._on_status(self.status())
            except Exception:
                log.exception("status listener failed")

    async def close(self) -> None:
        """Free every engine and model, then stop the engine thread."""
        for st in self.roles.values():
            detached = self._drop_remote(st)
            if detached is not None:
                await detached.aclose()

        def job() -> None:
            for st in self.roles.values():
                if st.local is not None:
                    st.local.close()
                    st.local = None
            for model in self._models.values():
                model.close()
            self._models.clear()

        await asyncio.wrap_future(self.worker.submit(LOAD_PRIORITY, job))
        self.worker.stop()


def _gpu_layers(setting: int | str, gpu: bool) -> int:
    if setting == "auto":
        return -1 if gpu else 0
    return int(setting)


def _check_memory(path: Path, gguf: Any, n_ctx: int, kv_type: str, gpu_layers: int) -> None:
    """Refuse, with the numbers, a model that would not fit in available memory."""
    from lsp_server.hardware.estimate import estimate_memory
    from lsp_server.hardware.probe import available_memory

    available = available_memory()
    if available is None:
        return
    est = estimate_memory(gguf, n_ctx=n_ctx, kv_cache_type=kv_type)
    if est.total > available:
        gib = 1024**3
        raise InsufficientMemory(
            f"{path.name} with a {n_ctx}-token context needs about {est.total / gib:.1f} GiB "
            f"(weights {est.weights / gib:.1f} GiB + KV cache {est.kv / gib:.1f} GiB) but only "
            f"{available / gib:.1f} GiB is available. Lower openLlm.engine.contextLength, set "
            "openLlm.engine.kvCacheType to q8_0, or choose a smaller quantization.",
            data={"needBytes": est.total, "availableBytes": available, "contextLength": n_ctx},
        )
