"""Map the user's settings to what the engine manager loads for each role.

The engine package takes plain configurations (:mod:`lsp_server.engine.config`); this
module is the one place that reads :class:`~lsp_server.config.settings.Settings` for
them. A role whose configuration is unchanged is not reloaded.
"""

from __future__ import annotations

from dataclasses import replace

from lsp_server.config.settings import EngineSettings, Settings
from lsp_server.engine.config import LoadConfig, LocalEngineConfig
from lsp_server.engine.remote import RemoteConfig, normalize_url


def local_engine_config(engine: EngineSettings) -> LocalEngineConfig:
    """The llama.cpp configuration of ``openLlm.engine``."""
    return LocalEngineConfig(
        context_length=engine.context_length,
        threads=engine.threads,
        batch_size=engine.batch_size,
        gpu_layers=engine.gpu_layers,
        flash_attention=engine.flash_attention,
        kv_cache_type=engine.kv_cache_type,
        use_mmap=engine.use_mmap,
    )


def remote_configs(settings: Settings) -> dict[str, RemoteConfig | None]:
    """The remote configuration of each role under ``settings`` (None: served locally)."""
    remote = settings.remote
    out: dict[str, RemoteConfig | None] = {}
    for role, cfg in (("chat", remote.chat), ("completion", remote.completion)):
        if not cfg.enabled:
            out[role] = None
            continue
        is_completion = role == "completion"
        out[role] = RemoteConfig(
            url=normalize_url(cfg.url or remote.url),
            model=(cfg.model or remote.model).strip(),
            api_key_env=(cfg.api_key_env or remote.api_key_env).strip(),
            connect_timeout_s=remote.connect_timeout_ms / 1000,
            read_timeout_s=remote.read_timeout_ms / 1000,
            context_length=remote.context_length,
            health_interval_s=float(remote.health_interval_s),
            completion_api=remote.completion.api if is_completion else "auto",
            completion_timeout_s=remote.completion.timeout_ms / 1000,
            fallback_to_local=bool(is_completion and remote.completion.fallback_to_local),
        )
    return out


def engine_configs(settings: Settings) -> dict[str, LoadConfig | None]:
    """Return the load configuration each role needs under ``settings`` (None: off).

    Completion uses ``completion.model``, else ``model``, else the bundled code model,
    with its own context length. The same file is loaded once and shared. A role on a
    remote server keeps the local configuration of its fallback (chat has none).
    """
    completion = settings.completion
    remote = remote_configs(settings)
    local = local_engine_config(settings.engine)
    chat = LoadConfig(settings.model, local, remote["chat"])
    if remote["chat"] is not None:  # no local model behind a remote chat: nothing to reload
        chat = LoadConfig("", LocalEngineConfig(), remote["chat"])
    return {
        "chat": chat,
        "completion": LoadConfig(
            completion.model or settings.model,
            replace(local, context_length=completion.context_length),
            remote["completion"],
        )
        if completion.enabled
        else None,
    }
