"""What inline completion reads from the settings, as one plain value.

The protocol layer maps ``openLlm.completion.*`` to :class:`CompletionOptions` for
every request, so the completion package needs no
settings model. The defaults are the settings' defaults (a unit test keeps them so).
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_server.core.secrets import DEFAULT_SECRET_GLOBS


@dataclass(frozen=True)
class CompletionOptions:
    """Inline completion settings (see ``openLlm.completion.*`` in the README)."""

    enabled: bool = True
    max_tokens: int = 48
    time_budget_ms: int = 1000
    lines_before: int = 256
    lines_after: int = 64
    window_tokens: int = 1536
    align_lines: int = 16
    extra_context: bool = True
    extra_chunks: int = 16
    chunk_lines: int = 64
    extra_tokens: int = 1024
    reuse_chunk_tokens: int = 24
    warmup: bool = True
    max_chars_right_of_cursor: int = 8
    max_file_kb: int = 1024
    disabled_languages: tuple[str, ...] = ()
    exclude_globs: tuple[str, ...] = ()
    secret_globs: tuple[str, ...] = DEFAULT_SECRET_GLOBS
    fim_order: str = "auto"
    """``auto``, ``psm`` or ``spm`` (suffix first)."""
