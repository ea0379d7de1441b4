"""Inline completion as a domain service, free of LSP.

:class:`CompletionService` owns what happens between a cursor and a suggestion:

- skip rules (turned off, language, excluded files, busy lines and large files for
  automatic triggers, secret files when the engine is not in this process);
- the result cache, which serves typing along a shown suggestion without inference;
- supersession: at most one completion generates, a newer request cancels the older;
- the prompt, planned for the engine that serves the role (:mod:`.planner`), and the
  stop and clean-up rules (:mod:`.cleanup`);
- falling back to the local model when the remote server is unreachable (when allowed);
- the context ring of other files and the idle warm-up, which evaluates the prompt at
  the last cursor of the document being edited when new context arrives, on engines
  that keep their KV cache.

Each document's last cursor is kept apart from the last request's stats, so warm-ups and
the ring look where the user is. The protocol layer supplies documents, engines and the
options, and shapes the records below into LSP responses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from lsp_server.completion.cleanup import ResultCache, StopRules, clean
from lsp_server.completion.context import (
    Chunk,
    ChunkRing,
    CursorWindow,
    cursor_window,
    display_path,
    matches_any,
)
from lsp_server.completion.options import CompletionOptions
from lsp_server.completion.planner import CompletionPlan, plan_completion
from lsp_server.completion.prompt import PromptLayout
from lsp_server.core.errors import Cancelled, InvalidParams, OpenLlmError
from lsp_server.core.secrets import is_secret
from lsp_server.core.uris import is_file_uri, uri_to_path
from lsp_server.engine.base import (
    CancelToken,
    Engine,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    Priority,
    Vocabulary,
)
from lsp_server.engine.remote import RemoteError

log = logging.getLogger(__name__)

WARMUP_DELAY_S = 0.3
"""Bursts of edits settle before a warm-up starts."""
SECRET_SKIP = "secret file: not sent to a remote server"


@dataclass(frozen=True)
class Document:
    """The text of an open document and its language id."""

    text: str
    language: str


class Documents(Protocol):
    """The editor's documents, as the protocol layer keeps them."""

    def get(self, uri: str) -> Document | None:
        """The document at ``uri`` (None when it cannot be read)."""
        ...

    def is_open(self, uri: str) -> bool:
        """Whether the editor has ``uri`` open."""
        ...

    def root(self, uri: str) -> str | None:
        """The path of the workspace folder holding ``uri`` (prompt paths are relative)."""
        ...


class Engines(Protocol):
    """Where the completion engine comes from (the engine manager)."""

    async def engine(self, role: str = "completion", timeout: float | None = None) -> Engine:
        """Wait for the role's engine; raise why it is not available."""
        ...

    async def fall_back(self, role: str, error: OpenLlmError) -> Engine:
        """The local engine standing in for an unreachable server (or raise ``error``)."""
        ...


RunTask = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]
"""Runs a background coroutine, keeps a reference and logs its failure."""


@dataclass(frozen=True)
class CompletionRequest:
    """A completion at ``(line, character)`` (code points) in ``uri``."""

    uri: str
    line: int
    character: int
    automatic: bool
    """Triggered by typing (skip rules apply) rather than invoked by the user."""
    replace: tuple[int, int, str] | None = None
    """A selected completion item: offsets ``[start, end)`` its text would replace."""


@dataclass(frozen=True)
class Suggestion:
    """The outcome of a request: the text to show (None: nothing) and why."""

    text: str | None
    stats: GenerationStats | None = None
    mode: str = ""
    """The prompt layout (``prefix``, ``fim-psm``, ...) or the remote endpoint used."""
    cached: bool = False
    skipped: str = ""
    """Why no completion ran (empty when it ran)."""


@dataclass(frozen=True)
class PromptPart:
    """Where one part of a token prompt (``bos``, ``extra:<path>``, ``prefix``, ...) lies."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class ShownPrompt:
    """A token prompt as sent to the engine, for developers and tests."""

    mode: str
    parts: list[PromptPart]
    tokens: list[int]
    text: str
    """The tokens as text, control tokens spelled out."""


@dataclass
class LastCompletion:
    """The last completion that ran: its prompt mode and what it cost."""

    mode: str
    stats: GenerationStats = field(metadata={"flatten": True})


@dataclass
class CompletionStatus:
    """Counters for ``openLlm/status``."""

    requests: int = 0
    """Completions that ran (not served by the cache, not skipped)."""
    cancelled: int = 0
    cache_hits: int = 0
    warmups: int = 0
    """Warm-ups that finished (evaluated a prompt without generating)."""
    skipped: int = 0
    last_skip: str | None = None
    """Why the last skipped request was skipped."""
    extra_chunks: int = 0
    last: LastCompletion | None = None


@dataclass
class _Prompts:
    """The last token prompts, rendered only when asked for."""

    completion: tuple[Vocabulary, PromptLayout] | None = None
    warmup: tuple[Vocabulary, PromptLayout] | None = None


def skip_reason(
    options: CompletionOptions,
    path: str,
    language: str,
    text: str,
    window: CursorWindow,
    automatic: bool,
) -> str:
    """Why a completion at ``window`` should not run (empty: it should)."""
    if not options.enabled:
        return "disabled"
    if language in options.disabled_languages:
        return f"language {language} is disabled"
    if options.exclude_globs and matches_any(path, list(options.exclude_globs)):
        return "file excluded"
    if not automatic:
        return ""
    if len(text) > options.max_file_kb * 1024:
        return "file too large"
    if len(window.line_suffix.strip()) > options.max_chars_right_of_cursor:
        return "too much text right of the cursor"
    return ""


class CompletionService:
    """Suggestions at a cursor, with the cache, supersession, warm-up and skip rules."""

    def __init__(
        self,
        engines: Engines,
        documents: Documents,
        options: Callable[[], CompletionOptions],
        run_task: RunTask,
    ) -> None:
        self._engines = engines
        self._documents = documents
        self._options = options
        self._run_task = run_task
        self.ring = ChunkRing()
        self.cache = ResultCache()
        self.cursors: dict[str, tuple[int, int]] = {}
        """Each document's last completion cursor ``(line, character)``."""
        self._counters = CompletionStatus()
        self._prompts = _Prompts()
        self._inflight: CancelToken | None = None
        self._warmup: asyncio.Task[Any] | None = None
        self._last_uri: str | None = None
        """The document of the last completion request: the one a warm-up prepares."""

    # --- completion ---
    async def complete(self, request: CompletionRequest) -> Suggestion:
        """Produce a suggestion for ``request``, superseding any completion in flight.

        Raises :class:`Cancelled` when superseded or cancelled, and the engine's errors
        (not ready, unreachable without a fallback, ...).
        """
        options = self._options()
        uri = request.uri
        doc = self._documents.get(uri)
        if doc is None:
            raise InvalidParams(f"cannot read the document {uri}")
        self._last_uri = uri
        self.cursors[uri] = (request.line, request.character)
        text, line, character = _apply_replace(doc.text, request)
        path = uri_to_path(uri) or uri
        window = self._window(options, text, line, character, path, doc.language)
        reason = skip_reason(options, path, doc.language, text, window, request.automatic)
        if reason:
            return self._skip(reason)
        prefix_key = window.before[-2000:] + window.line_prefix
        suffix_key = window.line_suffix + window.after[:500]
        hit = self.cache.get(uri, prefix_key, suffix_key)
        if hit is not None:
            return Suggestion(hit, cached=True)

        if self._inflight is not None:  # supersede: at most one completion generates
            self._inflight.cancel("superseded")
        cancel = CancelToken()
        self._inflight = cancel
        self._cancel_warmup()
        try:
            engine = await self._engines.engine("completion")
            cancel.raise_if_cancelled()
            if not engine.in_process and is_secret(path, options.secret_globs):
                return self._skip(SECRET_SKIP)
            self._counters.requests += 1
            try:
                result, plan, mode = await self._generate(engine, uri, window, options, cancel)
            except RemoteError as exc:
                if not exc.unreachable:
                    raise
                # The team server is down: the local model answers (when allowed) until it is back.
                engine = await self._engines.fall_back("completion", exc)
                result, plan, mode = await self._generate(engine, uri, window, options, cancel)
        except (Cancelled, asyncio.CancelledError):
            self._counters.cancelled += 1
            cancel.cancel("cancelled")
            raise
        finally:
            if self._inflight is cancel:
                self._inflight = None
        suggestion = clean(result.text, window)
        stats = result.stats
        self._counters.last = LastCompletion(mode, stats)
        vocab = engine.vocabulary
        self._prompts.completion = (
            (vocab, plan.layout) if vocab is not None and plan.layout is not None else None
        )
        log.info(
            "completion %s: prompt %d, reused %d, evaluated %d, generated %d tokens; "
            "prompt %.0f ms, total %.0f ms",
            mode,
            stats.prompt_tokens,
            stats.reused_tokens,
            stats.evaluated_tokens,
            stats.generated_tokens,
            stats.prompt_ms,
            stats.prompt_ms + stats.generation_ms,
        )
        if suggestion:
            self.cache.put(uri, prefix_key, suffix_key, suggestion)
        return Suggestion(suggestion, stats, mode)

    def _skip(self, reason: str) -> Suggestion:
        self._counters.skipped += 1
        self._counters.last_skip = reason
        log.debug("no completion: %s", reason)
        return Suggestion(None, skipped=reason)

    async def _generate(
        self,
        engine: Engine,
        uri: str,
        window: CursorWindow,
        options: CompletionOptions,
        cancel: CancelToken,
    ) -> tuple[GenerationResult, CompletionPlan, str]:
        budget = options.time_budget_ms / 1000 if options.time_budget_ms else None
        rules = StopRules(window, time_budget_s=budget)
        plan = self._plan(engine, uri, window, options, rules.check, Priority.COMPLETION)
        result = await engine.infill(plan.request, cancel)
        mode = plan.mode
        if plan.layout is None:  # the server chose the layout: name its endpoint
            mode = f"{engine.backend}-{await engine.completion_api()}"
        return result, plan, mode

    def _plan(
        self,
        engine: Engine,
        uri: str,
        window: CursorWindow,
        options: CompletionOptions,
        stop_check: Callable[[str], int | None] | None,
        priority: Priority,
    ) -> CompletionPlan:
        """Plan with paths as the prompt shows them (relative to the workspace folder)."""
        root = self._documents.root(uri)
        chunks = [
            Chunk(display_path(c.path, root), c.text, c.lines)
            for c in self.ring.chunks(exclude_path=window.path)
        ]
        shown = dataclasses.replace(window, path=display_path(window.path, root))
        project = os.path.basename(root.rstrip("/\\")) if root else "project"
        return plan_completion(
            engine,
            shown,
            chunks,
            options,
            project=project or "project",
            stop_check=stop_check,
            priority=priority,
        )

    @staticmethod
    def _window(
        options: CompletionOptions, text: str, line: int, character: int, path: str, language: str
    ) -> CursorWindow:
        return cursor_window(
            text,
            line,
            character,
            path=path,
            language=language,
            lines_before=options.lines_before,
            lines_after=options.lines_after,
            align_lines=options.align_lines,
        )

    # --- documents, context ring and warm-up ---
    def on_document(self, event: str, uri: str) -> None:
        """Take ``open``/``change``/``save``/``close`` of ``uri`` into the context ring, and
        schedule a warm-up of the document being edited when its prompt changed."""
        options = self._options()
        if event == "close":
            if self._last_uri == uri:
                self._last_uri = None
            self.cursors.pop(uri, None)
            return
        doc = self._documents.get(uri)
        path = uri_to_path(uri)
        if doc is None or path is None or not is_file_uri(uri):
            return
        if len(doc.text) > options.max_file_kb * 1024:
            return
        self.ring.capacity = options.extra_chunks
        self.ring.chunk_lines = options.chunk_lines
        self.ring.secret_globs = tuple(options.secret_globs)
        line = self.cursors.get(uri, (0, 0))[0]
        changed = options.extra_context and self.ring.add_file(path, doc.text, line)
        if event == "open":
            changed = True
        if changed and options.warmup and options.enabled:
            # New context changes the prompt of the document being edited: prepare that one.
            last = self._last_uri
            target = last if last is not None and self._documents.is_open(last) else uri
            self._cancel_warmup()
            self._warmup = self._run_task(self._warm_up(target), "completion warm-up")

    def _cancel_warmup(self) -> None:
        if self._warmup is not None and not self._warmup.done():
            self._warmup.cancel()

    async def _warm_up(self, uri: str) -> None:
        """Evaluate the prompt at ``uri``'s last cursor (or its top) at low priority."""
        await asyncio.sleep(WARMUP_DELAY_S)
        try:
            engine = await self._engines.engine("completion", timeout=0)
        except OpenLlmError:
            return
        vocab = engine.vocabulary
        if not engine.keeps_kv_cache or vocab is None:
            return  # a remote server keeps its own cache
        doc = self._documents.get(uri)
        if doc is None:
            return
        options = self._options()
        line, character = self.cursors.get(uri, (0, 0))
        path = uri_to_path(uri) or uri
        window = self._window(options, doc.text, line, character, path, doc.language)
        plan = self._plan(engine, uri, window, options, None, Priority.WARMUP)
        if plan.request.tokens is None or plan.layout is None:
            return
        request = GenerationRequest(
            tokens=plan.request.tokens,
            priority=Priority.WARMUP,
            reuse_chunks=options.reuse_chunk_tokens,
            evaluate_only=True,
        )
        try:
            result = await engine.generate(request, None, CancelToken())
        except (Cancelled, OpenLlmError) as exc:
            log.debug("warm-up skipped: %s", exc)
            return
        self._counters.warmups += 1
        self._prompts.warmup = (vocab, plan.layout)
        log.debug(
            "warm-up at %d:%d: evaluated %d of %d tokens",
            line,
            character,
            result.stats.evaluated_tokens,
            result.stats.prompt_tokens,
        )

    # --- inspection ---
    async def clear_cache(self) -> None:
        """Forget cached suggestions and the completion engine's evaluated prompt."""
        self.cache.clear()
        engine = await self._engines.engine("completion")
        await engine.clear_cache()

    def last_prompt(self, *, warmup: bool = False) -> ShownPrompt | None:
        """The last completion's token prompt (or the last finished warm-up's)."""
        shown = self._prompts.warmup if warmup else self._prompts.completion
        if shown is None:
            return None
        vocab, layout = shown
        parts = [PromptPart(name, start, end) for name, start, end in layout.parts]
        return ShownPrompt(layout.mode, parts, layout.tokens, vocab.render(layout.tokens))

    def status(self) -> CompletionStatus:
        """Counters and the last completion's stats."""
        return dataclasses.replace(
            self._counters, cache_hits=self.cache.hits, extra_chunks=len(self.ring.chunks())
        )


def _apply_replace(text: str, request: CompletionRequest) -> tuple[str, int, int]:
    """The text and cursor as if the selected completion item were inserted."""
    if request.replace is None:
        return text, request.line, request.character
    start, end, new_text = request.replace
    text = text[:start] + new_text + text[end:]
    before_cursor = text[: start + len(new_text)]
    line = before_cursor.count("\n")
    return text, line, len(before_cursor) - (before_cursor.rfind("\n") + 1)
