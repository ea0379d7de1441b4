"""Inline code completion: ``textDocument/inlineCompletion`` (LSP 3.18), with a fallback.

Clients that advertise inline completion get ghost text; others get the model's
suggestion as the first ``textDocument/completion`` item. At most one completion
generates at a time: a newer request cancels the one in flight (which answers
RequestCancelled), and ``$/cancelRequest`` stops it between tokens.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types

from lsp_server.completion.cleanup import ResultCache, StopRules, clean
from lsp_server.completion.context import (
    ChunkRing,
    CursorWindow,
    cursor_window,
    display_path,
    matches_any,
)
from lsp_server.completion.prompt import FimTokens, PromptLayout, build_prompt
from lsp_server.core.errors import Cancelled, OpenLlmError
from lsp_server.engine.base import (
    CancelToken,
    Engine,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    InfillRequest,
    Priority,
    SamplingParams,
    Vocabulary,
)
from lsp_server.engine.remote import RemoteError
from lsp_server.protocol import methods
from lsp_server.protocol.errors import to_jsonrpc
from lsp_server.protocol.features.completion import add_completion_provider
from lsp_server.protocol.features.documents import DocumentEvent, on_document_event
from lsp_server.protocol.server import OpenLlmServer, custom_request

log = logging.getLogger(__name__)


@dataclass
class CompletionState:
    """Per-server completion state: the request in flight, caches, extra context."""

    ring: ChunkRing = field(default_factory=ChunkRing)
    cache: ResultCache = field(default_factory=ResultCache)
    inflight: CancelToken | None = None
    last: dict[str, Any] = field(default_factory=dict)
    warmup_task: asyncio.Task[Any] | None = None
    requests: int = 0
    cancelled: int = 0
    warmups: int = 0
    last_uri: str | None = None
    """The document of the last completion request: the one a warm-up prepares."""
    """Warm-ups that finished (evaluated the prompt without generating)."""
    last_prompt: tuple[Vocabulary, PromptLayout] | None = None


@dataclass
class Outcome:
    """A finished completion: the suggestion (or None) and what it cost."""

    text: str | None
    stats: GenerationStats | None
    layout: PromptLayout | None
    cached: bool = False
    skipped: str = ""


def _path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _state(ls: OpenLlmServer) -> CompletionState:
    state: CompletionState | None = getattr(ls, "completion_state", None)
    if state is None:
        state = CompletionState()
        ls.completion_state = state  # type: ignore[attr-defined]
    return state


def _skip_reason(
    ls: OpenLlmServer, uri: str, language: str, text: str, window: CursorWindow, automatic: bool
) -> str:
    cfg = ls.settings.completion
    path = _path(uri)
    if not cfg.enabled:
        return "disabled"
    if language in cfg.disabled_languages:
        return f"language {language} is disabled"
    if cfg.exclude_globs and matches_any(path, cfg.exclude_globs):
        return "file excluded"
    if not automatic:
        return ""
    if len(text) > cfg.max_file_kb * 1024:
        return "file too large"
    if len(window.line_suffix.strip()) > cfg.max_chars_right_of_cursor:
        return "too much text right of the cursor"
    return ""


def _layout(
    ls: OpenLlmServer, engine: Engine, vocab: Vocabulary, uri: str, window: CursorWindow
) -> PromptLayout:
    cfg = ls.settings.completion
    fim = FimTokens.from_ids(vocab.fim)
    root = ls.folder_for(uri)
    root_path = _path(root) if root else None
    chunks = _state(ls).ring.chunks(exclude_path=window.path) if cfg.extra_context else []
    chunks = [type(c)(display_path(c.path, root_path), c.text, c.lines) for c in chunks]
    window = CursorWindow(
        path=display_path(window.path, root_path),
        language=window.language,
        before=window.before,
        line_prefix=window.line_prefix,
        line_suffix=window.line_suffix,
        after=window.after,
        first_line=window.first_line,
    )
    suffix_first = cfg.fim_order == "spm" or (
        cfg.fim_order == "auto" and "codestral" in engine.info.name.lower()
    )
    return build_prompt(
        window,
        chunks,
        fim,
        vocab.tokenize_code,
        bos=vocab.code_bos(),
        window_tokens=cfg.window_tokens,
        extra_tokens=cfg.extra_tokens if cfg.extra_context else 0,
        align_lines=cfg.align_lines,
        suffix_first=suffix_first,
        project=os.path.basename(root_path.rstrip("/")) if root_path else "project",
    )


async def complete(
    ls: OpenLlmServer,
    uri: str,
    position: types.Position,
    *,
    automatic: bool,
    replace: tuple[types.Range, str] | None = None,
) -> Outcome:
    """Produce a suggestion at ``position`` (superseding any completion in flight)."""
    state = _state(ls)
    cfg = ls.settings.completion
    doc = ls.workspace.get_text_document(uri)
    state.last_uri = uri
    text = doc.source
    # The client counts UTF-16 units by default; windows are cut in code points.
    point = doc.position_codec.position_from_client_units(doc.lines, position)
    line, character = point.line, point.character
    if replace is not None:
        rng, new_text = replace
        start = doc.offset_at_position(rng.start)
        end = doc.offset_at_position(rng.end)
        text = text[:start] + new_text + text[end:]
        before_cursor = text[: start + len(new_text)]
        line = before_cursor.count("\n")
        character = len(before_cursor) - (before_cursor.rfind("\n") + 1)
    window = cursor_window(
        text,
        line,
        character,
        path=_path(uri),
        language=doc.language_id or "",
        lines_before=cfg.lines_before,
        lines_after=cfg.lines_after,
        align_lines=cfg.align_lines,
    )
    reason = _skip_reason(ls, uri, doc.language_id or "", text, window, automatic)
    if reason:
        return Outcome(None, None, None, skipped=reason)
    prefix_key = window.before[-2000:] + window.line_prefix
    suffix_key = window.line_suffix + window.after[:500]
    hit = state.cache.get(uri, prefix_key, suffix_key)
    if hit is not None:
        return Outcome(hit, None, None, cached=True)

    if state.inflight is not None:  # supersede: at most one completion generates
        state.inflight.cancel("superseded")
    cancel = CancelToken()
    state.inflight = cancel
    if state.warmup_task is not None and not state.warmup_task.done():
        state.warmup_task.cancel()
    try:
        engine = await ls.manager().engine("completion")
        cancel.raise_if_cancelled()
        budget = cfg.time_budget_ms / 1000 if cfg.time_budget_ms else None
        state.requests += 1
        rules = StopRules(window, time_budget_s=budget)
        try:
            result, layout = await _generate(ls, engine, uri, window, rules, cancel)
        except RemoteError as exc:
            if not exc.unreachable:
                raise
            # The team server is down: the local model answers (when allowed) until it is back.
            engine = await ls.manager().fall_back("completion", exc)
            rules = StopRules(window, time_budget_s=budget)
            result, layout = await _generate(ls, engine, uri, window, rules, cancel)
    except (Cancelled, asyncio.CancelledError):
        state.cancelled += 1
        cancel.cancel("cancelled")
        raise
    finally:
        if state.inflight is cancel:
            state.inflight = None
    suggestion = clean(result.text, window)
    stats = result.stats
    state.last = {"mode": layout.mode, **stats.to_dict()}
    vocab = engine.vocabulary
    state.last_prompt = (vocab, layout) if vocab is not None else None
    log.info(
        "completion %s: prompt %d, reused %d, evaluated %d, generated %d tokens; "
        "prompt %.0f ms, total %.0f ms",
        layout.mode,
        stats.prompt_tokens,
        stats.reused_tokens,
        stats.evaluated_tokens,
        stats.generated_tokens,
        stats.prompt_ms,
        stats.prompt_ms + stats.generation_ms,
    )
    if suggestion:
        state.cache.put(uri, prefix_key, suffix_key, suggestion)
    return Outcome(suggestion, stats, layout)


async def _generate(
    ls: OpenLlmServer,
    engine: Engine,
    uri: str,
    window: CursorWindow,
    rules: StopRules,
    cancel: CancelToken,
) -> tuple[GenerationResult, PromptLayout]:
    """One suggestion: token-level FIM on the local model, text-level on a remote server."""
    cfg = ls.settings.completion
    sampling = SamplingParams(temperature=0, top_k=1, repeat_penalty=1.0)
    vocab = engine.vocabulary
    if vocab is not None:
        layout = _layout(ls, engine, vocab, uri, window)
        request = GenerationRequest(
            tokens=layout.tokens,
            max_tokens=cfg.max_tokens,
            sampling=sampling,
            priority=Priority.COMPLETION,
            reuse_chunks=cfg.reuse_chunk_tokens,
            stop_check=rules.check,
        )
        return await engine.generate(request, None, cancel), layout
    root = ls.folder_for(uri)
    root_path = _path(root) if root else None
    chars = 4  # about four characters a token: the token budgets, in text
    extra: list[tuple[str, str]] = []
    used = 0
    chunks = _state(ls).ring.chunks(exclude_path=window.path) if cfg.extra_context else []
    for chunk in reversed(chunks):  # newest first, kept in their order
        used += len(chunk.text)
        if used > cfg.extra_tokens * chars:
            break
        extra.insert(0, (display_path(chunk.path, root_path), chunk.text))
    infill = InfillRequest(
        before=_tail_lines(window.before, cfg.window_tokens * 3 // 4 * chars),
        typed=window.line_prefix,
        suffix=(window.line_suffix + window.after)[: cfg.window_tokens // 4 * chars],
        path=display_path(window.path, root_path),
        language=window.language,
        extra=extra,
        project=os.path.basename(root_path.rstrip("/")) if root_path else "project",
        max_tokens=cfg.max_tokens,
        sampling=sampling,
        stop_check=rules.check,
        timeout_s=_remote_timeout(ls),
    )
    result = await engine.infill(infill, cancel)
    return result, PromptLayout(mode=f"remote-{await engine.completion_api()}")


def _remote_timeout(ls: OpenLlmServer) -> float:
    return ls.settings.remote.completion.timeout_ms / 1000


def _tail_lines(text: str, limit: int) -> str:
    """The end of ``text``, at most ``limit`` characters, starting on a whole line."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    return tail[tail.find("\n") + 1 :]


async def _warm_up(ls: OpenLlmServer, uri: str) -> None:
    """Evaluate the prompt for ``uri``'s last cursor (or its top) at low priority."""
    await asyncio.sleep(0.3)  # let bursts of edits settle
    try:
        engine = await ls.manager().engine("completion", timeout=0)
    except OpenLlmError:
        return
    vocab = engine.vocabulary
    if vocab is None or not engine.keeps_kv_cache:
        return  # a remote server keeps its own cache
    doc = ls.workspace.get_text_document(uri)
    cursor = _state(ls).last.get(f"cursor:{uri}", (0, 0))
    cfg = ls.settings.completion
    window = cursor_window(
        doc.source,
        cursor[0],
        cursor[1],
        path=_path(uri),
        language=doc.language_id or "",
        lines_before=cfg.lines_before,
        lines_after=cfg.lines_after,
        align_lines=cfg.align_lines,
    )
    layout = _layout(ls, engine, vocab, uri, window)
    request = GenerationRequest(
        tokens=layout.tokens,
        priority=Priority.WARMUP,
        reuse_chunks=cfg.reuse_chunk_tokens,
        evaluate_only=True,
    )
    try:
        result = await engine.generate(request, None, CancelToken())
        _state(ls).warmups += 1
        log.debug(
            "warm-up: evaluated %d of %d tokens",
            result.stats.evaluated_tokens,
            result.stats.prompt_tokens,
        )
    except (Cancelled, OpenLlmError) as exc:
        log.debug("warm-up skipped: %s", exc)


def _on_document(ls: OpenLlmServer, event: DocumentEvent, uri: str) -> None:
    state = _state(ls)
    cfg = ls.settings.completion
    if event == "close":
        if state.last_uri == uri:
            state.last_uri = None
        return
    try:
        doc = ls.workspace.get_text_document(uri)
    except Exception:
        return
    if not uri.startswith("file:") or len(doc.source) > cfg.max_file_kb * 1024:
        return
    state.ring.capacity = cfg.extra_chunks
    state.ring.chunk_lines = cfg.chunk_lines
    state.ring.secret_globs = tuple(cfg.secret_globs)
    cursor = state.last.get(f"cursor:{uri}", (0, 0))
    changed = cfg.extra_context and state.ring.add_file(_path(uri), doc.source, cursor[0])
    if event == "open" and cfg.warmup and cfg.enabled:
        changed = True
    if changed and cfg.warmup and cfg.enabled:
        # New context changes the prompt of the document being edited, so prepare that one.
        last = state.last_uri
        target = last if last is not None and last in ls.workspace.text_documents else uri
        if state.warmup_task is not None and not state.warmup_task.done():
            state.warmup_task.cancel()
        state.warmup_task = ls.run_task(_warm_up(ls, target), "completion warm-up")


def register(ls: OpenLlmServer) -> None:
    """Register inline completion, the completion fallback, and document tracking."""
    on_document_event(ls, _on_document)

    @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def on_inline(
        ls: OpenLlmServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        uri = params.text_document.uri
        pos = params.position
        _state(ls).last[f"cursor:{uri}"] = (pos.line, pos.character)
        automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
        selected = params.context.selected_completion_info
        replace = (selected.range, selected.text) if selected else None
        try:
            outcome = await complete(ls, uri, pos, automatic=automatic, replace=replace)
        except OpenLlmError as exc:
            if automatic and exc.kind != "cancelled":
                # No model (loading, failed, declined): keep typing quiet; status says why.
                log.debug("no automatic completion: %s", exc.message)
                return types.InlineCompletionList(items=[])
            raise to_jsonrpc(exc) from exc
        if not outcome.text:
            return types.InlineCompletionList(items=[])
        insert = outcome.text
        rng = types.Range(start=pos, end=pos)
        if selected is not None:
            insert = selected.text + insert
            rng = selected.range
        return types.InlineCompletionList(
            items=[types.InlineCompletionItem(insert_text=insert, range=rng)]
        )

    async def fallback(
        ls: OpenLlmServer, params: types.CompletionParams
    ) -> types.CompletionList | None:
        caps = ls.client_capabilities.text_document
        if caps is not None and caps.inline_completion is not None:
            return None  # the client shows ghost text instead
        uri = params.text_document.uri
        pos = params.position
        automatic = (
            params.context is None
            or params.context.trigger_kind != types.CompletionTriggerKind.Invoked
        )
        try:
            outcome = await complete(ls, uri, pos, automatic=automatic)
        except OpenLlmError as exc:
            if automatic and exc.kind != "cancelled":
                log.debug("no automatic completion: %s", exc.message)
                return types.CompletionList(is_incomplete=True, items=[])
            raise
        if not outcome.text:
            return types.CompletionList(is_incomplete=True, items=[])
        first = outcome.text.split("\n", 1)[0].strip() or outcome.text.strip()
        item = types.CompletionItem(
            label=first[:60],
            label_details=types.CompletionItemLabelDetails(description="Open LLM"),
            kind=types.CompletionItemKind.Text,
            detail="Open LLM suggestion",
            documentation=_documentation(ls, outcome.text),
            sort_text="\u0000",
            preselect=True,
            filter_text=_word_before(ls, uri, pos) + outcome.text,
            text_edit=types.TextEdit(range=types.Range(start=pos, end=pos), new_text=outcome.text),
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    add_completion_provider(ls, fallback)

    @custom_request(ls, methods.COMPLETION_LAST_PROMPT)
    async def last_prompt(ls: OpenLlmServer, _params: None) -> dict[str, Any]:
        """The exact tokens of the last completion prompt and their layout."""
        return _last_prompt(ls)

    @custom_request(ls, methods.COMPLETION_CLEAR_CACHE)
    async def clear_cache(ls: OpenLlmServer, _params: None) -> dict[str, Any]:
        """Forget cached suggestions and the completion KV cache (benchmarks, debugging)."""
        state = _state(ls)
        state.cache.clear()
        engine = await ls.manager().engine("completion")
        await engine.clear_cache()
        return {"cleared": True}


def _last_prompt(ls: OpenLlmServer) -> dict[str, Any]:
    state = _state(ls)
    if state.last_prompt is None:
        return {"mode": None, "parts": [], "tokens": [], "text": ""}
    vocab, layout = state.last_prompt
    text = vocab.render(layout.tokens)
    return {
        "mode": layout.mode,
        "parts": [{"name": n, "start": a, "end": b} for n, a, b in layout.parts],
        "tokens": layout.tokens,
        "text": text,
    }


def _documentation(ls: OpenLlmServer, text: str) -> types.MarkupContent | str:
    """The suggestion as a code block when the client renders Markdown, else a plain string."""
    caps = ls.client_capabilities.text_document
    item = caps.completion.completion_item if caps and caps.completion else None
    formats = (item.documentation_format if item else None) or []
    if types.MarkupKind.Markdown in formats:
        return types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{text}\n```")
    return text  # a plain string is valid for every client


def _word_before(ls: OpenLlmServer, uri: str, pos: types.Position) -> str:
    doc = ls.workspace.get_text_document(uri)
    lines = doc.lines
    line = lines[pos.line] if pos.line < len(lines) else ""
    head = line[: pos.character]
    i = len(head)
    while i > 0 and (head[i - 1].isalnum() or head[i - 1] == "_"):
        i -= 1
    return head[i:]


def completion_status(ls: OpenLlmServer) -> dict[str, Any]:
    """Counters and the last request's stats, for ``openLlm/status``."""
    state = _state(ls)
    return {
        "requests": state.requests,
        "cancelled": state.cancelled,
        "cacheHits": state.cache.hits,
        "warmups": state.warmups,
        "last": {k: v for k, v in state.last.items() if not k.startswith("cursor:")},
        "extraChunks": len(state.ring.chunks()),
    }
