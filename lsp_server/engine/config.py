"""What the engine manager needs to load a role: plain, comparable values.

The mapping from the user's settings to these lives in :mod:`lsp_server.config.engines`,
so the engine package knows nothing of pydantic settings. A role reloads when its
:class:`LoadConfig` changes (they compare by value).
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_server.engine.remote import RemoteConfig


@dataclass(frozen=True)
class LocalEngineConfig:
    """How llama.cpp runs a model in this process."""

    context_length: int = 4096
    """Context window in tokens; 0 uses the model's trained context."""
    threads: int | str = "auto"
    """CPU threads, or ``auto`` (leave a core for the editor)."""
    batch_size: int = 256
    """Prompt tokens evaluated per slice (cancellation is checked between slices)."""
    gpu_layers: int | str = "auto"
    """Layers offloaded to a GPU: ``auto`` (all when the build supports one), 0, -1 (all)."""
    flash_attention: bool | str = "auto"
    kv_cache_type: str = "f16"
    """``f16``, ``q8_0``, ``q4_0`` or ``f32``."""
    use_mmap: bool = True


@dataclass(frozen=True)
class LoadConfig:
    """Everything that, when changed, requires reloading a role's engine."""

    spec: str
    """The model reference (``openLlm.model`` form): empty for the bundled model."""
    engine: LocalEngineConfig
    remote: RemoteConfig | None = None
    """Served by a remote server (``spec``/``engine`` then describe the local fallback)."""
    server_kind: str = "openai"
    """Which registered server engine speaks to ``remote`` (see :mod:`.registry`)."""
