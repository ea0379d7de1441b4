"""The one registry of chat stores: a :class:`~lsp_server.storage.ChatStore` per open folder.

Without a workspace folder, chats go to a store of their own (:data:`NO_WORKSPACE`).
Listing and search span the open folders unless a request names one (``folder_uri``); a
chat of one folder never shows in another. A store opens on first use and stays open
while the server runs (a folder closed and opened again finds it ready).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsp_server.chat.records import ChatExport
from lsp_server.core.errors import InvalidParams, NotFound
from lsp_server.core.paths import normalize_folder_uri
from lsp_server.storage import Chat, ChatPage, ChatStore, Folder, SearchHit
from lsp_server.storage.records import SortKey

log = logging.getLogger(__name__)

NO_WORKSPACE = "openllm://no-workspace"
"""Folder key of the chats of a session with no workspace folder open."""


class ChatStores:
    """The chat stores of the open workspace folders, and lookups and lists across them."""

    def __init__(
        self,
        folder_uris: Callable[[], list[str]],
        *,
        on_recovered: Callable[[str, Path], None] | None = None,
        **store_options: Any,
    ) -> None:
        """Serve the folders ``folder_uris()`` names at each call.

        ``on_recovered(folder_uri, moved_to)`` hears of a damaged database moved aside
        when its store opened; ``store_options`` go to each :class:`ChatStore` (tests).
        """
        self._folder_uris = folder_uris
        self._on_recovered = on_recovered
        self._options = store_options
        self._stores: dict[str, ChatStore] = {}
        self._lock = threading.Lock()

    def folders(self) -> list[str]:
        """Normalized URIs of the open workspace folders (or the no-workspace key)."""
        uris = [normalize_folder_uri(u) for u in self._folder_uris()]
        return list(dict.fromkeys(uris)) or [NO_WORKSPACE]

    def _open(self, uri: str) -> ChatStore:
        with self._lock:
            store = self._stores.get(uri)
            if store is None:
                store = ChatStore(uri, **self._options)
                self._stores[uri] = store
                recovered = store.recovered_from
            else:
                recovered = None
        if recovered is not None and self._on_recovered is not None:
            self._on_recovered(uri, recovered)
        return store

    def stores(self, folder_uri: str | None = None) -> list[ChatStore]:
        """The store of ``folder_uri`` (which must be open), or of every open folder."""
        open_folders = self.folders()
        if folder_uri is None:
            return [self._open(uri) for uri in open_folders]
        uri = normalize_folder_uri(folder_uri)
        if uri not in open_folders:
            raise NotFound(
                f"Workspace folder {folder_uri} is not open.", data={"folderUri": folder_uri}
            )
        return [self._open(uri)]

    def store(self, folder_uri: str | None) -> ChatStore:
        """The store for new chats: ``folder_uri``'s, else the first open folder's."""
        return self.stores(folder_uri)[0]

    def store_of_chat(self, chat_id: str, folder_uri: str | None = None) -> ChatStore:
        """The store holding ``chat_id`` (NotFound when no open folder has it)."""
        missing = NotFound(f"No chat with id {chat_id!r}.", data={"chatId": chat_id})
        return self._holding(lambda s: s.get_chat_info(chat_id), folder_uri, missing)

    def store_of_message(self, message_id: str, folder_uri: str | None = None) -> ChatStore:
        """The store holding ``message_id``."""
        missing = NotFound(f"No message with id {message_id!r}.", data={"messageId": message_id})
        return self._holding(lambda s: s.get_message(message_id), folder_uri, missing)

    def store_of_folder(self, folder_id: str, folder_uri: str | None = None) -> ChatStore:
        """The store holding the chat folder ``folder_id``."""

        def probe(store: ChatStore) -> None:
            if not any(f.id == folder_id for f in store.list_folders()):
                raise NotFound(folder_id)

        missing = NotFound(f"No folder with id {folder_id!r}.", data={"folderId": folder_id})
        return self._holding(probe, folder_uri, missing)

    def _holding(
        self, probe: Callable[[ChatStore], object], folder_uri: str | None, missing: NotFound
    ) -> ChatStore:
        """The first store (of ``folder_uri``, else of every open folder) where ``probe``
        does not raise NotFound; ``missing`` when there is none."""
        for store in self.stores(folder_uri):
            try:
                probe(store)
            except NotFound:
                continue
            return store
        raise missing

    def close(self) -> None:
        """Close every store."""
        with self._lock:
            stores = list(self._stores.values())
            self._stores.clear()
        for store in stores:
            store.close()

    # -- whole chats and the trash -------------------------------------------------------

    def clear_all(self, folder_uri: str | None = None) -> int:
        """Move every chat of one folder (or of every open folder) to the trash."""
        return sum(store.clear_all() for store in self.stores(folder_uri))

    def restore_all(self, folder_uri: str | None = None) -> int:
        """Take every chat of one folder (or of every open folder) out of the trash."""
        return sum(store.restore_all() for store in self.stores(folder_uri))

    def empty_trash(self, folder_uri: str | None = None) -> int:
        """Delete trashed chats for good; return how many."""
        return sum(store.empty_trash() for store in self.stores(folder_uri))

    def export(self, chat_id: str, format: str, folder_uri: str | None = None) -> ChatExport:
        """A chat as re-importable JSON (``format`` "json") or as Markdown."""
        store = self.store_of_chat(chat_id, folder_uri)
        if format == "markdown":
            return ChatExport("markdown", store.export_markdown(chat_id), None)
        data = store.export_json(chat_id)
        return ChatExport("json", json.dumps(data, ensure_ascii=False, indent=2), data)

    def import_chat(
        self, data: dict[str, Any] | None, text: str | None, folder_uri: str | None = None
    ) -> Chat:
        """Import an export given as an object (``data``) or as JSON text."""
        if data is None:
            try:
                data = json.loads(text or "")
            except ValueError as exc:
                raise InvalidParams(f"text: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidParams("text: a chat export is a JSON object")
        return self.store(folder_uri).import_json(data)

    # -- across folders -----------------------------------------------------------------

    def list_chats(
        self,
        *,
        folder_uri: str | None = None,
        folder_id: str | None = None,
        trash: bool = False,
        sort: SortKey = "updated",
        descending: bool | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ChatPage:
        """A page of chats (or of the trash): one folder's, or merged across the open ones.

        Merged pages keep each store's order: pinned first, then ``sort`` (the trash:
        most recently deleted first); ``total`` adds up every store's.
        """
        stores = self.stores(folder_uri)
        if folder_id:
            stores = [self.store_of_folder(folder_id, folder_uri)]
        if len(stores) == 1:
            if trash:
                return stores[0].list_trash(offset=offset, limit=limit)
            return stores[0].list_chats(
                sort=sort, descending=descending, folder_id=folder_id, offset=offset, limit=limit
            )
        desc = (sort != "title") if descending is None else descending
        items: list[Chat] = []
        total = 0
        for store in stores:
            if trash:
                page = store.list_trash(offset=0, limit=offset + limit)
            else:
                page = store.list_chats(
                    sort=sort,
                    descending=desc,
                    folder_id=folder_id,  # "" (chats in no folder) or None here
                    offset=0,
                    limit=offset + limit,
                )
            items.extend(page.items)
            total += page.total
        if trash:
            items.sort(key=lambda c: c.deleted_at or 0, reverse=True)
        else:
            items.sort(key=lambda c: _sort_key(c, sort), reverse=desc)
            items.sort(key=lambda c: not c.pinned)
        return ChatPage(
            items=items[offset : offset + limit], total=total, offset=offset, limit=limit
        )

    def search(
        self,
        query: str,
        *,
        folder_uri: str | None = None,
        folder_id: str | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """Search one chat folder, one workspace folder or every open one, best first."""
        if folder_id:
            store = self.store_of_folder(folder_id, folder_uri)
            return store.search(query, limit=limit, folder_id=folder_id)
        hits: list[SearchHit] = []
        for store in self.stores(folder_uri):
            hits.extend(store.search(query, limit=limit))
        hits.sort(key=lambda h: (h.score, h.updated_at), reverse=True)
        return hits[:limit]

    def list_folders(self, folder_uri: str | None = None) -> list[Folder]:
        """The chat folders of one workspace folder or of every open one."""
        return [folder for store in self.stores(folder_uri) for folder in store.list_folders()]


def _sort_key(chat: Chat, sort: str) -> Any:
    if sort == "title":
        return chat.title.casefold()
    return chat.created_at if sort == "created" else chat.updated_at
