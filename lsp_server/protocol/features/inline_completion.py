"""Inline code completion: ``textDocument/inlineCompletion`` (LSP 3.18), with a fallback.

Clients that advertise inline completion get ghost text; others get the model's
suggestion as the first ``textDocument/completion`` item. The behaviour (skip rules,
result cache, supersession, warm-up, remote fallback) lives in
:class:`~lsp_server.completion.service.CompletionService`; the handlers here validate,
call it once and shape the LSP response. A superseded or cancelled request answers
RequestCancelled.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types

from lsp_server.completion.options import CompletionOptions
from lsp_server.completion.service import (
    CompletionRequest,
    CompletionService,
    Document,
    Suggestion,
)
from lsp_server.config.settings import Settings
from lsp_server.core.errors import OpenLlmError
from lsp_server.core.uris import uri_to_path
from lsp_server.engine.base import Engine
from lsp_server.protocol import methods
from lsp_server.protocol.errors import to_jsonrpc
from lsp_server.protocol.features.completion import add_completion_provider
from lsp_server.protocol.features.documents import on_document_event
from lsp_server.protocol.server import OpenLlmServer, Params, custom_request
from lsp_server.protocol.wire import to_wire

log = logging.getLogger(__name__)


def completion_options(settings: Settings) -> CompletionOptions:
    """``openLlm.completion.*`` as plain options."""
    cfg = settings.completion
    return CompletionOptions(
        enabled=cfg.enabled,
        max_tokens=cfg.max_tokens,
        time_budget_ms=cfg.time_budget_ms,
        lines_before=cfg.lines_before,
        lines_after=cfg.lines_after,
        window_tokens=cfg.window_tokens,
        align_lines=cfg.align_lines,
        extra_context=cfg.extra_context,
        extra_chunks=cfg.extra_chunks,
        chunk_lines=cfg.chunk_lines,
        extra_tokens=cfg.extra_tokens,
        reuse_chunk_tokens=cfg.reuse_chunk_tokens,
        warmup=cfg.warmup,
        max_chars_right_of_cursor=cfg.max_chars_right_of_cursor,
        max_file_kb=cfg.max_file_kb,
        disabled_languages=tuple(cfg.disabled_languages),
        exclude_globs=tuple(cfg.exclude_globs),
        secret_globs=tuple(cfg.secret_globs),
        fim_order=cfg.fim_order,
    )


class _Workspace:
    """The service's view of the editor's documents (pygls' workspace)."""

    def __init__(self, ls: OpenLlmServer) -> None:
        self._ls = ls

    def get(self, uri: str) -> Document | None:
        try:
            doc = self._ls.workspace.get_text_document(uri)
            return Document(doc.source, doc.language_id or "")
        except (OSError, UnicodeDecodeError, RuntimeError):
            return None

    def is_open(self, uri: str) -> bool:
        return uri in self._ls.workspace.text_documents

    def root(self, uri: str) -> str | None:
        folder = self._ls.folder_for(uri)
        return (uri_to_path(folder) or folder) if folder else None


class _Engines:
    """The engine manager, created on first use (it needs the running loop)."""

    def __init__(self, ls: OpenLlmServer) -> None:
        self._ls = ls

    async def engine(self, role: str = "completion", timeout: float | None = None) -> Engine:
        return await self._ls.manager().engine(role, timeout)

    async def fall_back(self, role: str, error: OpenLlmError) -> Engine:
        return await self._ls.manager().fall_back(role, error)


class LastPromptParams(Params):
    """Params of ``openLlm/completion/lastPrompt``: ``warmup`` for the last warm-up's."""

    warmup: bool = False


def _request(
    ls: OpenLlmServer,
    uri: str,
    position: types.Position,
    automatic: bool,
    selected: types.SelectedCompletionInfo | None = None,
) -> CompletionRequest:
    """The service request: the client's UTF-16 position in code points."""
    doc = ls.workspace.get_text_document(uri)
    point = doc.position_codec.position_from_client_units(doc.lines, position)
    replace = None
    if selected is not None:
        rng = selected.range
        start, end = doc.offset_at_position(rng.start), doc.offset_at_position(rng.end)
        replace = (start, end, selected.text)
    return CompletionRequest(uri, point.line, point.character, automatic, replace)


async def _suggest(ls: OpenLlmServer, request: CompletionRequest) -> Suggestion:
    """Ask the service; without a model, automatic triggers stay quiet (status says why)."""
    try:
        return await ls.state(CompletionService).complete(request)
    except OpenLlmError as exc:
        if request.automatic and exc.kind != "cancelled":
            log.debug("no automatic completion: %s", exc.message)
            return Suggestion(None, skipped=exc.message)
        raise to_jsonrpc(exc) from exc


def register(ls: OpenLlmServer) -> None:
    """Register inline completion, the completion fallback, and document tracking."""
    service = ls.add_state(
        CompletionService(
            _Engines(ls), _Workspace(ls), lambda: completion_options(ls.settings), ls.run_task
        )
    )
    on_document_event(ls, lambda _ls, event, uri: service.on_document(event, uri))

    @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def on_inline(
        ls: OpenLlmServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        pos, selected = params.position, params.context.selected_completion_info
        automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
        request = _request(ls, params.text_document.uri, pos, automatic, selected)
        outcome = await _suggest(ls, request)
        if not outcome.text:
            return types.InlineCompletionList(items=[])
        rng = selected.range if selected else types.Range(start=pos, end=pos)
        insert = (selected.text if selected else "") + outcome.text
        item = types.InlineCompletionItem(insert_text=insert, range=rng)
        return types.InlineCompletionList(items=[item])

    async def fallback(
        ls: OpenLlmServer, params: types.CompletionParams
    ) -> types.CompletionList | None:
        caps = ls.client_capabilities.text_document
        if caps is not None and caps.inline_completion is not None:
            return None  # the client shows ghost text instead
        invoked = types.CompletionTriggerKind.Invoked
        automatic = params.context is None or params.context.trigger_kind != invoked
        uri, pos = params.text_document.uri, params.position
        outcome = await _suggest(ls, _request(ls, uri, pos, automatic))
        if not outcome.text:
            return types.CompletionList(is_incomplete=True, items=[])
        return types.CompletionList(
            is_incomplete=True, items=[_completion_item(ls, uri, pos, outcome.text)]
        )

    add_completion_provider(ls, fallback)

    @custom_request(ls, methods.COMPLETION_LAST_PROMPT, LastPromptParams)
    async def last_prompt(ls: OpenLlmServer, p: LastPromptParams) -> dict[str, Any]:
        """The exact tokens of the last completion (or warm-up) prompt and their layout."""
        prompt = ls.state(CompletionService).last_prompt(warmup=p.warmup)
        if prompt is None:
            return {"mode": None, "parts": [], "tokens": [], "text": ""}
        shown: dict[str, Any] = to_wire(prompt)
        return shown

    @custom_request(ls, methods.COMPLETION_CLEAR_CACHE)
    async def clear_cache(ls: OpenLlmServer, _params: None) -> dict[str, Any]:
        """Forget cached suggestions and the completion KV cache (benchmarks, debugging)."""
        await ls.state(CompletionService).clear_cache()
        return {"cleared": True}


def _completion_item(
    ls: OpenLlmServer, uri: str, pos: types.Position, text: str
) -> types.CompletionItem:
    """The suggestion as the first item of a completion list."""
    first = text.split("\n", 1)[0].strip() or text.strip()
    return types.CompletionItem(
        label=first[:60],
        label_details=types.CompletionItemLabelDetails(description="Open LLM"),
        kind=types.CompletionItemKind.Text,
        detail="Open LLM suggestion",
        documentation=_documentation(ls, text),
        sort_text="\u0000",
        preselect=True,
        filter_text=_word_before(ls, uri, pos) + text,
        text_edit=types.TextEdit(range=types.Range(start=pos, end=pos), new_text=text),
    )


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
    out: dict[str, Any] = to_wire(ls.state(CompletionService).status())
    out["last"] = out["last"] or {}  # {} before the first completion
    return out
