"""Turn a cursor window into the completion prompt for whichever engine serves the role.

An engine that accepts tokens (in-process llama.cpp) gets the model's own FIM layout in
token ids (:func:`~lsp_server.completion.prompt.build_prompt`); an engine that tokenizes
on its side (a remote server) gets the same parts as text
(:func:`~lsp_server.completion.prompt.build_text_prompt`). Both are sized in tokens with
the same budgets and cuts: the model's tokenizer when there is one, an estimate otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lsp_server.completion.context import Chunk, CursorWindow
from lsp_server.completion.options import CompletionOptions
from lsp_server.completion.prompt import (
    FimTokens,
    PromptLayout,
    build_prompt,
    build_text_prompt,
)
from lsp_server.engine.base import Engine, InfillRequest, Priority, SamplingParams

GREEDY = SamplingParams(temperature=0, top_k=1, repeat_penalty=1.0)
"""Suggestions are greedy: the same context gives the same ghost text."""


@dataclass
class CompletionPlan:
    """What to send: the engine request, and the token layout when there is one."""

    request: InfillRequest
    layout: PromptLayout | None
    """The token prompt and its parts (engines that accept tokens); None for text."""

    @property
    def mode(self) -> str:
        """The token layout's mode (``prefix``, ``fim-psm``, ...), or ``text``."""
        return self.layout.mode if self.layout is not None else "text"


def suffix_first(options: CompletionOptions, model_name: str) -> bool:
    """Whether the FIM layout puts the suffix first (``spm``; ``auto``: Codestral)."""
    if options.fim_order == "auto":
        return "codestral" in model_name.lower()
    return options.fim_order == "spm"


def plan_completion(
    engine: Engine,
    window: CursorWindow,
    chunks: list[Chunk],
    options: CompletionOptions,
    *,
    project: str = "project",
    stop_check: Callable[[str], int | None] | None = None,
    priority: Priority = Priority.COMPLETION,
) -> CompletionPlan:
    """Plan the completion at ``window`` (paths as the prompt shows them) for ``engine``.

    ``chunks`` are other files' context, oldest first (left out when
    ``options.extra_context`` is off); ``stop_check`` is the stop rule run on the text.
    """
    extra_tokens = options.extra_tokens if options.extra_context else 0
    chunks = chunks if options.extra_context else []
    request = InfillRequest(
        before=window.before,
        typed=window.line_prefix,
        suffix=window.line_suffix + window.after,
        path=window.path,
        language=window.language,
        project=project,
        max_tokens=options.max_tokens,
        sampling=GREEDY,
        stop_check=stop_check,
        priority=priority,
        reuse_chunks=options.reuse_chunk_tokens,
    )
    vocab = engine.vocabulary
    if vocab is not None and engine.accepts_tokens:
        layout = build_prompt(
            window,
            chunks,
            FimTokens.from_ids(vocab.fim),
            vocab.tokenize_code,
            bos=vocab.code_bos(),
            window_tokens=options.window_tokens,
            extra_tokens=extra_tokens,
            align_lines=options.align_lines,
            suffix_first=suffix_first(options, engine.info.name),
            project=project,
        )
        request.tokens = layout.tokens
        return CompletionPlan(request, layout)
    text = build_text_prompt(
        window,
        chunks,
        window_tokens=options.window_tokens,
        extra_tokens=extra_tokens,
        align_lines=options.align_lines,
    )
    request.before, request.suffix = text.before, text.suffix
    request.extra, request.prompt = text.extra, text.prompt
    return CompletionPlan(request, None)
