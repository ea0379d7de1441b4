"""Code actions on a selection that start a chat: Ask, Explain, Write tests, Fix.

``textDocument/codeAction`` answers commands (``openLlm.chat.start``) whose single argument
is ready-made: the selection as an attachment, the action's question, and for Fix the
diagnostics of the range. A client with a chat panel runs the command itself (opening
the panel and calling ``openLlm/chat/send``); any other client sends it back with
``workspace/executeCommand`` and the server creates the chat and streams the answer
(``openLlm/chat/delta``), answering with the ``openLlm/chat/send`` result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from lsp_server.chat.actions import ACTIONS, action_question, action_title
from lsp_server.chat.service import ChatService
from lsp_server.core.errors import InvalidParams, OpenLlmError
from lsp_server.protocol import methods
from lsp_server.protocol.errors import to_jsonrpc
from lsp_server.protocol.features.chat_params import StartParams, answer_options, attachment_refs
from lsp_server.protocol.server import OpenLlmServer, _validate
from lsp_server.protocol.wire import to_wire

log = logging.getLogger(__name__)

KINDS = sorted({action.kind for action in ACTIONS})


def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    """LSP kind filtering: ``only`` entries match the kind or any of its parents."""
    if not only:
        return True
    return any(kind == o or kind.startswith(o + ".") for o in only)


def _plain(ls: OpenLlmServer, value: Any) -> Any:
    return ls.protocol._converter.unstructure(value)


def _overlaps(diagnostic: types.Diagnostic, rng: types.Range) -> bool:
    start, end = diagnostic.range.start, diagnostic.range.end
    before = (end.line, end.character) < (rng.start.line, rng.start.character)
    after = (start.line, start.character) > (rng.end.line, rng.end.character)
    return not (before or after)


def code_actions(ls: OpenLlmServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """The chat actions for a selection (none for an empty selection)."""
    rng = params.range
    if (rng.start.line, rng.start.character) == (rng.end.line, rng.end.character):
        return []
    uri = params.text_document.uri
    folder = ls.folder_for(uri)
    diagnostics = [d for d in params.context.diagnostics if _overlaps(d, rng)]
    first = rng.start.line + 1
    last = rng.end.line + (0 if rng.end.character == 0 and rng.end.line > rng.start.line else 1)
    path = uri.rsplit("/", 1)[-1]
    out = []
    for action in ACTIONS:
        if not _wanted(action.kind, params.context.only):
            continue
        wire_diagnostics = [_plain(ls, d) for d in diagnostics] if action.id == "fix" else []
        argument = {
            "action": action.id,
            "folderUri": folder,
            "title": action_title(action, path, first, last),
            "content": "" if action.id == "ask" else action_question(action, wire_diagnostics),
            "attachments": [{"uri": uri, "range": _plain(ls, rng)}],
            "diagnostics": wire_diagnostics,
        }
        out.append(
            types.CodeAction(
                title=action.title,
                kind=action.kind,
                diagnostics=diagnostics if action.id == "fix" and diagnostics else None,
                command=types.Command(
                    title=action.title, command=methods.CHAT_START_COMMAND, arguments=[argument]
                ),
            )
        )
    return out


def register(ls: OpenLlmServer) -> None:
    """Register ``textDocument/codeAction`` and the ``openLlm.chat.start`` command.

    The command answers through the chat feature's service (``ls.state(ChatService)``).
    """

    @ls.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=list(KINDS)),
    )
    def on_code_action(ls: OpenLlmServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return code_actions(ls, params)

    @ls.command(methods.CHAT_START_COMMAND)
    async def on_start(ls: OpenLlmServer, *args: Any) -> Any:
        if len(args) != 1:
            message = f"{methods.CHAT_START_COMMAND} takes one argument, got {len(args)}"
            raise to_jsonrpc(InvalidParams(message))
        try:
            p = _validate(StartParams, args[0], methods.CHAT_START_COMMAND)
            result = await ls.state(ChatService).start(
                p.content,
                attachment_refs(p.attachments),
                answer_options(p),
                title=p.title,
                action=p.action,
                diagnostics=p.diagnostics,
                folder_uri=p.folder_uri,
            )
            return to_wire(result)
        except OpenLlmError as exc:
            raise to_jsonrpc(exc) from exc
