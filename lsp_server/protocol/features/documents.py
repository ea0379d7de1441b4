"""Text document events, registered once and fanned out to the features that need them.

pygls allows one handler per notification, but several features care about
documents (completion context, preset-file diagnostics, ...). They subscribe with
:func:`on_document_event` instead of registering ``textDocument/did*`` themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from lsprotocol import types

from lsp_server.protocol.server import OpenLlmServer

log = logging.getLogger(__name__)

DocumentEvent = Literal["open", "change", "save", "close"]
Listener = Callable[[OpenLlmServer, DocumentEvent, str], Awaitable[None] | None]


def on_document_event(ls: OpenLlmServer, listener: Listener) -> None:
    """Call ``listener(ls, event, uri)`` after pygls updated its copy of the document."""
    ls.document_listeners.append(listener)


async def _dispatch(ls: OpenLlmServer, event: DocumentEvent, uri: str) -> None:
    for listener in list(ls.document_listeners):
        try:
            result = listener(ls, event, uri)
            if result is not None:
                await result
        except Exception:
            log.exception("document listener failed for %s %s", event, uri)


def register(ls: OpenLlmServer) -> None:
    """Register the document notifications (pygls keeps the text in ``ls.workspace``)."""

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: OpenLlmServer, params: types.DidOpenTextDocumentParams) -> None:
        await _dispatch(ls, "open", params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: OpenLlmServer, params: types.DidChangeTextDocumentParams) -> None:
        await _dispatch(ls, "change", params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: OpenLlmServer, params: types.DidSaveTextDocumentParams) -> None:
        await _dispatch(ls, "save", params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: OpenLlmServer, params: types.DidCloseTextDocumentParams) -> None:
        await _dispatch(ls, "close", params.text_document.uri)
