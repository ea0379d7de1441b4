"""``textDocument/completion``: one handler, asking providers in order.

Providers are async callables ``(ls, params) -> CompletionList | None``; the first
that returns a list answers (e.g. preset-file keys before the model's suggestion).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from lsprotocol import types

from lsp_server.core.errors import OpenLlmError
from lsp_server.protocol.errors import to_jsonrpc
from lsp_server.protocol.server import OpenLlmServer

log = logging.getLogger(__name__)

Provider = Callable[[OpenLlmServer, types.CompletionParams], Awaitable[types.CompletionList | None]]


def add_completion_provider(ls: OpenLlmServer, provider: Provider) -> None:
    """Append ``provider`` to the chain asked by ``textDocument/completion``."""
    ls.completion_providers.append(provider)


def register(ls: OpenLlmServer) -> None:
    """Register ``textDocument/completion``."""

    @ls.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=['"', ":"], resolve_provider=False),
    )
    async def on_completion(
        ls: OpenLlmServer, params: types.CompletionParams
    ) -> types.CompletionList | None:
        for provider in list(ls.completion_providers):
            try:
                result = await provider(ls, params)
            except OpenLlmError as exc:
                raise to_jsonrpc(exc) from exc
            if result is not None:
                return result  # type: ignore[no-any-return]
        return None
