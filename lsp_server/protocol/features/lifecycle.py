"""Initialize, settings (initializationOptions, workspace/configuration), model loading."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from typing import Any

from lsprotocol import types

from lsp_server.config.engines import engine_configs
from lsp_server.config.settings import SECTION, RemoteSettings, parse_settings
from lsp_server.core.errors import OpenLlmError
from lsp_server.protocol.logging import set_level
from lsp_server.protocol.progress import ProgressReporter
from lsp_server.protocol.server import OpenLlmServer

log = logging.getLogger(__name__)

DEMO_MESSAGE = (
    "Open LLM LSP is using its bundled tiny demo model (SmolLM2-135M): answers will be "
    "simple. Set openLlm.model to a .gguf file or a Hugging Face owner/repo:QUANT for a "
    "better model."
)


def _section(raw: Any) -> Any:
    """Accept ``{"openLlm": {...}}`` or the section itself."""
    if isinstance(raw, dict) and SECTION in raw:
        return raw[SECTION]
    return raw


REMOTE_REFUSED = (
    "Open LLM: a workspace setting (or a change while running) tried to set openLlm.remote; it "
    "was ignored. Only your user settings may enable a remote engine or change its URL, since "
    "it receives your code: set openLlm.remote in your user settings and restart the language "
    "server."
)
_REFUSED: weakref.WeakKeyDictionary[OpenLlmServer, set[str]] = weakref.WeakKeyDictionary()
"""What was already reported per server (refused remote values, server problems)."""


def _remote_of(value: Any) -> RemoteSettings:
    if not isinstance(value, dict):
        return RemoteSettings()
    return parse_settings({"remote": value})[0].remote


def trusted_remote(ls: OpenLlmServer, raw: Any) -> Any:
    """Keep ``openLlm.remote`` as the editor's initializationOptions gave it.

    The server cannot tell a user setting from a workspace one in workspace/configuration
    (clients merge them), so ``remote`` is honoured only from initializationOptions (the
    client's user-level configuration, e.g. VS Code's application-scoped settings). A
    different value from anywhere else is refused and reported once.
    """
    if not isinstance(raw, dict):
        return raw
    options = ls.initial_options
    trusted = options.get("remote") if isinstance(options, dict) else None
    incoming = raw.get("remote")
    if _remote_of(incoming) != _remote_of(trusted):
        seen = _REFUSED.setdefault(ls, set())
        key = json.dumps(incoming, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            log.warning("openLlm.remote from the workspace settings was refused")
            ls.show(REMOTE_REFUSED, types.MessageType.Warning)
    out = dict(raw)
    if trusted is None:
        out.pop("remote", None)
    else:
        out["remote"] = trusted
    return out


async def fetch_settings(ls: OpenLlmServer) -> Any:
    """Ask the client for the ``openLlm`` section, if it supports workspace/configuration."""
    caps = ls.client_capabilities
    if not (caps.workspace and caps.workspace.configuration):
        return None
    try:
        result = await asyncio.wait_for(
            ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
            ),
            timeout=10,
        )
    except Exception as exc:
        log.warning("workspace/configuration failed: %s", exc)
        return None
    return result[0] if result else None


async def apply_settings(ls: OpenLlmServer, raw: Any) -> None:
    """Validate ``raw`` settings, report problems once, and (re)load engines as needed.

    ``ls.settings_transformers`` (e.g. the active preset's model and context) are applied
    after validation; call :func:`reapply_settings` when one of their inputs changes.
    """
    raw = trusted_remote(ls, raw)
    ls.raw_settings = raw
    settings, problems = parse_settings(raw)
    if problems and problems != ls.settings_problems:
        for problem in problems:
            log.warning("%s", problem)
        ls.show("Open LLM settings: " + "; ".join(problems), types.MessageType.Warning)
    ls.settings_problems = problems
    ls.settings = settings
    set_level(settings.log_level)
    ls._apply_preset_policy()
    effective = settings
    for transform in ls.settings_transformers:
        try:
            effective = transform(ls, effective)
        except OpenLlmError as exc:
            ls.show(f"Open LLM: {exc.message}", types.MessageType.Warning)
    manager = ls.manager()
    for role in manager.apply(engine_configs(effective)):
        ls.run_task(track_load(ls, role), f"load {role}")


async def reapply_settings(ls: OpenLlmServer) -> None:
    """Run :func:`apply_settings` again on the last settings received."""
    await apply_settings(ls, ls.raw_settings)


async def track_load(ls: OpenLlmServer, role: str) -> None:
    """Show load progress for ``role`` and tell the user about the outcome."""
    manager = ls.manager()
    state = manager.roles[role]
    generation = state.generation
    reporter = ProgressReporter(ls, "Loading model")
    await reporter.begin(role)
    try:
        while not state.ready.is_set() and state.generation == generation:
            reporter.report(int(state.progress * 100))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(state.ready.wait()), 0.1)
    finally:
        reporter.end(state.state)
    if state.generation != generation:
        return
    if state.error is not None:
        ls.show(f"Open LLM: {state.error.message}", types.MessageType.Error)
    elif state.engine is not None and state.engine.health_error is not None:
        problem = state.engine.health_error.message
        shown = _REFUSED.setdefault(ls, set())  # once, even when both roles use the server
        if f"health:{problem}" not in shown:
            shown.add(f"health:{problem}")
            ls.show(f"Open LLM: {problem}", types.MessageType.Warning)
    elif state.resolved is not None and state.resolved.bundled and not ls.announced_demo:
        ls.announced_demo = True
        ls.show(DEMO_MESSAGE, types.MessageType.Info)


def register(ls: OpenLlmServer) -> None:
    """Register the lifecycle handlers."""

    @ls.feature(types.INITIALIZE)
    def on_initialize(ls: OpenLlmServer, params: types.InitializeParams) -> None:
        ls.initial_options = _section(params.initialization_options)
        ls.loop = asyncio.get_running_loop()

    @ls.feature(types.INITIALIZED)
    async def on_initialized(ls: OpenLlmServer, params: types.InitializedParams) -> None:
        raw = await fetch_settings(ls)
        await apply_settings(ls, _merge(ls.initial_options, _section(raw)))

    @ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def on_config(ls: OpenLlmServer, params: types.DidChangeConfigurationParams) -> None:
        pushed = _section(params.settings)
        raw = pushed if isinstance(pushed, dict) and pushed else await fetch_settings(ls)
        await apply_settings(ls, _merge(ls.initial_options, raw))

    @ls.feature(types.SHUTDOWN)
    async def on_shutdown(ls: OpenLlmServer, params: None) -> None:
        if ls.engines is not None:
            await ls.engines.close()


def _merge(base: Any, override: Any) -> Any:
    """Deep-merge two settings objects; ``override`` wins, non-dicts replace."""
    if not isinstance(base, dict):
        return override if override is not None else base
    if not isinstance(override, dict):
        return base
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out.get(key), value) if isinstance(value, dict) else value
    return out
