"""``openLlm/chat/*``: chats kept per workspace folder, with streamed answers.

Each handler validates its params (``chat_params.py``), makes one call to the
:class:`~lsp_server.chat.service.ChatService` (or its store registry) and turns the
records it gets back into JSON (``protocol/wire.py``). The service reaches the server
through :class:`_ServerHost`: open folders and documents, the chat engine, presets,
settings, messages to the user, and the ``openLlm/chat/delta`` and
``openLlm/chat/changed`` notifications.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from lsprotocol import types

from lsp_server.chat.records import ChatChange, ChatDelta
from lsp_server.chat.service import ChatService
from lsp_server.config.settings import Settings
from lsp_server.engine.base import Engine
from lsp_server.presets import PresetManager
from lsp_server.protocol import methods
from lsp_server.protocol.features.chat_params import (
    BranchParams,
    CancelParams,
    ChatIdParams,
    CreateParams,
    DuplicateParams,
    EditParams,
    ExportParams,
    FolderCreateParams,
    FolderIdParams,
    FolderParams,
    FolderRenameParams,
    ImportParams,
    ListParams,
    MessageIdParams,
    MoveParams,
    RegenerateParams,
    RenameParams,
    RenderParams,
    RestoreParams,
    SearchParams,
    SendParams,
    UpdateParams,
    answer_options,
    attachment_refs,
)
from lsp_server.protocol.server import OpenLlmServer, custom_request
from lsp_server.protocol.wire import to_wire
from lsp_server.storage import Message


class _ServerHost:
    """The language server as the chat service sees it (:class:`ChatHost`)."""

    def __init__(self, ls: OpenLlmServer) -> None:
        self._ls = ls

    @property
    def streams(self) -> dict[str, Callable[[], None]]:
        return self._ls.streams

    def folder_uris(self) -> list[str]:
        return self._ls.folder_uris()

    def folder_for(self, uri: str | None) -> str | None:
        return self._ls.folder_for(uri)

    def open_document(self, uri: str) -> tuple[str, str] | None:
        doc = self._ls.workspace.text_documents.get(unquote(uri))  # pygls keys: unquoted URIs
        return None if doc is None else (doc.source, doc.language_id or "")

    async def chat_engine(self) -> Engine:
        return await self._ls.manager().engine("chat")

    def engine_stats_changed(self) -> None:
        self._ls.manager()._emit()

    def presets(self) -> PresetManager:
        manager: PresetManager = self._ls.presets()
        return manager

    def settings(self) -> Settings:
        return self._ls.settings

    def show_warning(self, message: str) -> None:
        self._ls.show(message, types.MessageType.Warning)

    def show_error(self, message: str) -> None:
        self._ls.show(message, types.MessageType.Error)

    def send_delta(self, delta: ChatDelta) -> None:
        self._ls.notify(methods.CHAT_DELTA, to_wire(delta))

    def chat_changed(self, change: ChatChange) -> None:
        self._ls.notify(methods.CHAT_CHANGED, to_wire(change))


def register(ls: OpenLlmServer) -> None:
    """Register every ``openLlm/chat/*`` request; the service is ``ls.state(ChatService)``."""
    svc = ls.add_state(ChatService(_ServerHost(ls)))
    stores = svc.stores

    @custom_request(ls, methods.CHAT_CREATE, CreateParams)
    async def on_create(ls: OpenLlmServer, p: CreateParams) -> Any:
        chat = svc.create(
            p.title,
            folder_id=p.folder_id,
            system_prompt=p.system_prompt,
            preset_id=p.preset_id,
            folder_uri=p.folder_uri,
        )
        return to_wire(chat)

    @custom_request(ls, methods.CHAT_LIST, ListParams)
    async def on_list(ls: OpenLlmServer, p: ListParams) -> Any:
        page = stores.list_chats(
            folder_uri=p.folder_uri,
            folder_id=p.folder_id,
            trash=p.trash,
            sort=p.sort,
            descending=p.descending,
            offset=p.offset,
            limit=p.limit,
        )
        return to_wire(page)

    @custom_request(ls, methods.CHAT_GET, ChatIdParams)
    async def on_get(ls: OpenLlmServer, p: ChatIdParams) -> Any:
        detail = stores.store_of_chat(p.chat_id, p.folder_uri).get_chat(p.chat_id)
        return to_wire(detail) | {"generating": svc.generating(p.chat_id)}

    @custom_request(ls, methods.CHAT_RENAME, RenameParams)
    async def on_rename(ls: OpenLlmServer, p: RenameParams) -> Any:
        return to_wire(
            stores.store_of_chat(p.chat_id, p.folder_uri).rename_chat(p.chat_id, p.title)
        )

    @custom_request(ls, methods.CHAT_UPDATE, UpdateParams)
    async def on_update(ls: OpenLlmServer, p: UpdateParams) -> Any:
        store = stores.store_of_chat(p.chat_id, p.folder_uri)
        return to_wire(store.update_chat(p.chat_id, system_prompt=p.system_prompt))

    @custom_request(ls, methods.CHAT_DUPLICATE, DuplicateParams)
    async def on_duplicate(ls: OpenLlmServer, p: DuplicateParams) -> Any:
        store = stores.store_of_chat(p.chat_id, p.folder_uri)
        return to_wire(store.duplicate_chat(p.chat_id, p.title))

    @custom_request(ls, methods.CHAT_DELETE, ChatIdParams)
    async def on_delete(ls: OpenLlmServer, p: ChatIdParams) -> Any:
        stores.store_of_chat(p.chat_id, p.folder_uri).delete_chat(p.chat_id)
        return {"chatId": p.chat_id, "deleted": True}

    @custom_request(ls, methods.CHAT_CLEAR_ALL, FolderParams)
    async def on_clear_all(ls: OpenLlmServer, p: FolderParams) -> Any:
        return {"trashed": stores.clear_all(p.folder_uri)}

    @custom_request(ls, methods.CHAT_RESTORE, RestoreParams)
    async def on_restore(ls: OpenLlmServer, p: RestoreParams) -> Any:
        if p.chat_id is None:
            return {"restored": stores.restore_all(p.folder_uri), "chat": None}
        chat = stores.store_of_chat(p.chat_id, p.folder_uri).restore_chat(p.chat_id)
        return {"restored": 1, "chat": to_wire(chat)}

    @custom_request(ls, methods.CHAT_EMPTY_TRASH, FolderParams)
    async def on_empty_trash(ls: OpenLlmServer, p: FolderParams) -> Any:
        return {"deleted": stores.empty_trash(p.folder_uri)}

    @custom_request(ls, methods.CHAT_SEARCH, SearchParams)
    async def on_search(ls: OpenLlmServer, p: SearchParams) -> Any:
        hits = stores.search(p.query, folder_uri=p.folder_uri, folder_id=p.folder_id, limit=p.limit)
        return {"hits": to_wire(hits)}

    @custom_request(ls, methods.CHAT_FOLDER_LIST, FolderParams)
    async def on_folder_list(ls: OpenLlmServer, p: FolderParams) -> Any:
        return {"folders": to_wire(stores.list_folders(p.folder_uri))}

    @custom_request(ls, methods.CHAT_FOLDER_CREATE, FolderCreateParams)
    async def on_folder_create(ls: OpenLlmServer, p: FolderCreateParams) -> Any:
        return to_wire(stores.store(p.folder_uri).create_folder(p.name))

    @custom_request(ls, methods.CHAT_FOLDER_RENAME, FolderRenameParams)
    async def on_folder_rename(ls: OpenLlmServer, p: FolderRenameParams) -> Any:
        store = stores.store_of_folder(p.folder_id, p.folder_uri)
        return to_wire(store.rename_folder(p.folder_id, p.name))

    @custom_request(ls, methods.CHAT_FOLDER_DELETE, FolderIdParams)
    async def on_folder_delete(ls: OpenLlmServer, p: FolderIdParams) -> Any:
        store = stores.store_of_folder(p.folder_id, p.folder_uri)
        return {"folderId": p.folder_id, "movedChats": store.delete_folder(p.folder_id)}

    @custom_request(ls, methods.CHAT_MOVE, MoveParams)
    async def on_move(ls: OpenLlmServer, p: MoveParams) -> Any:
        store = stores.store_of_chat(p.chat_id, p.folder_uri)
        return to_wire(store.move_chat(p.chat_id, p.folder_id))

    @custom_request(ls, methods.CHAT_PIN, ChatIdParams)
    async def on_pin(ls: OpenLlmServer, p: ChatIdParams) -> Any:
        return to_wire(stores.store_of_chat(p.chat_id, p.folder_uri).set_pinned(p.chat_id, True))

    @custom_request(ls, methods.CHAT_UNPIN, ChatIdParams)
    async def on_unpin(ls: OpenLlmServer, p: ChatIdParams) -> Any:
        return to_wire(stores.store_of_chat(p.chat_id, p.folder_uri).set_pinned(p.chat_id, False))

    @custom_request(ls, methods.CHAT_BRANCH, BranchParams)
    async def on_branch(ls: OpenLlmServer, p: BranchParams) -> Any:
        store = stores.store_of_message(p.message_id, p.folder_uri)
        return to_wire(store.branch_chat(p.message_id, p.title))

    @custom_request(ls, methods.CHAT_SWITCH_BRANCH, MessageIdParams)
    async def on_switch(ls: OpenLlmServer, p: MessageIdParams) -> Any:
        store = stores.store_of_message(p.message_id, p.folder_uri)
        return to_wire(store.switch_branch(p.message_id))

    @custom_request(ls, methods.CHAT_EXPORT, ExportParams)
    async def on_export(ls: OpenLlmServer, p: ExportParams) -> Any:
        return to_wire(stores.export(p.chat_id, p.format, p.folder_uri))

    @custom_request(ls, methods.CHAT_IMPORT, ImportParams)
    async def on_import(ls: OpenLlmServer, p: ImportParams) -> Any:
        return to_wire(stores.import_chat(p.data, p.text, p.folder_uri))

    @custom_request(ls, methods.CHAT_SEND, SendParams)
    async def on_send(ls: OpenLlmServer, p: SendParams) -> Any:
        attachments = attachment_refs(p.attachments)
        result = await svc.send(p.chat_id, p.content, attachments, answer_options(p), p.folder_uri)
        return to_wire(result)

    @custom_request(ls, methods.CHAT_EDIT, EditParams)
    async def on_edit(ls: OpenLlmServer, p: EditParams) -> Any:
        attachments = None if p.attachments is None else attachment_refs(p.attachments)
        result = await svc.edit(
            p.message_id,
            p.content,
            attachments,
            answer_options(p),
            generate=p.generate,
            folder_uri=p.folder_uri,
        )
        if isinstance(result, Message):  # edited without answering
            return {"chatId": result.chat_id, "userMessage": to_wire(result), "message": None}
        return to_wire(result)

    @custom_request(ls, methods.CHAT_REGENERATE, RegenerateParams)
    async def on_regenerate(ls: OpenLlmServer, p: RegenerateParams) -> Any:
        return to_wire(await svc.regenerate(p.message_id, answer_options(p), p.folder_uri))

    @custom_request(ls, methods.CHAT_CANCEL, CancelParams)
    async def on_cancel(ls: OpenLlmServer, p: CancelParams) -> Any:
        return {"cancelled": svc.cancel(p.chat_id, p.request_id)}

    @custom_request(ls, methods.CHAT_RENDER_PROMPT, RenderParams)
    async def on_render(ls: OpenLlmServer, p: RenderParams) -> Any:
        view = await svc.render_prompt(
            chat_id=p.chat_id,
            message_id=p.message_id,
            content=p.content,
            attachments=attachment_refs(p.attachments),
            options=answer_options(p),
            folder_uri=p.folder_uri,
        )
        return to_wire(view)
