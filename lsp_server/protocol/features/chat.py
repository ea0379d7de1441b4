"""``openLlm/chat/*``: chats kept per workspace folder, with streamed answers.

One :class:`~lsp_server.storage.ChatStore` (SQLite) per open workspace folder; without a
folder, chats go to a store of their own (:data:`NO_WORKSPACE`). Listing and search span
the open folders unless a request names one (``folderUri``); a chat of one folder never
shows in another.

``openLlm/chat/send`` (and ``edit``/``regenerate``) build the prompt from the system
prompt (the chat's override, else the preset's) and the active branch through the
model's chat template, dropping the oldest turns when the context is too small (and
saying so), stream the answer as ``openLlm/chat/delta`` notifications, and write it to
the database as it streams (at most 500 ms behind), so a cancel, a crash or a kill keeps
the partial answer, marked incomplete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from lsprotocol import types
from pydantic import Field, model_validator
from pygls.uris import to_fs_path

from lsp_server.chat import (
    Attachment,
    PromptPlan,
    ThinkingSplitter,
    answer_reserve,
    clean_title,
    fallback_title,
    fit_history,
    history_messages,
    starts_in_thinking,
    title_messages,
    user_prompt_text,
)
from lsp_server.chat.attachments import MAX_FILE_BYTES, read_attachment
from lsp_server.chat.titles import TITLE_MAX_TOKENS
from lsp_server.core.errors import Cancelled, Conflict, InvalidParams, NotFound, StorageError
from lsp_server.core.paths import normalize_folder_uri
from lsp_server.core.uris import uri_to_path
from lsp_server.engine.base import (
    CancelToken,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    Priority,
    SamplingParams,
)
from lsp_server.engine.local import LocalEngine
from lsp_server.engine.manager import AnyEngine
from lsp_server.protocol import methods
from lsp_server.protocol.server import OpenLlmServer, Params, custom_request
from lsp_server.storage import (
    Chat,
    ChatPage,
    ChatStore,
    Message,
    MessageStats,
    SearchHit,
)
from lsp_server.storage.chats import DEFAULT_TITLE, new_id, now_ms

log = logging.getLogger(__name__)

NO_WORKSPACE = "openllm://no-workspace"
"""Folder key of the chats of a session with no workspace folder open."""
FLUSH_INTERVAL_S = 0.5
"""A streaming answer is written to the database at most this long after a change."""

SortParam = Literal["updated", "created", "title"]


# ---------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------


class FolderParams(Params):
    """An optional workspace folder (``folderUri``); None: the open folders."""

    folder_uri: str | None = None


class ChatIdParams(FolderParams):
    """Params naming a chat."""

    chat_id: str = Field(min_length=1)


class MessageIdParams(FolderParams):
    """Params naming a message."""

    message_id: str = Field(min_length=1)


class CreateParams(FolderParams):
    """Params of ``openLlm/chat/create``."""

    title: str | None = None
    folder_id: str | None = None
    system_prompt: str | None = None
    preset_id: str | None = None


class ListParams(FolderParams):
    """Params of ``openLlm/chat/list``."""

    sort: SortParam = "updated"
    descending: bool | None = None
    folder_id: str | None = None
    offset: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=1000)
    trash: bool = False


class RenameParams(ChatIdParams):
    """Params of ``openLlm/chat/rename``."""

    title: str


class UpdateParams(ChatIdParams):
    """Params of ``openLlm/chat/update``: ``systemPrompt`` null clears the override."""

    system_prompt: str | None


class DuplicateParams(ChatIdParams):
    """Params of ``openLlm/chat/duplicate``."""

    title: str | None = None


class RestoreParams(FolderParams):
    """Params of ``openLlm/chat/restore``: one chat, or ``all``."""

    chat_id: str | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> RestoreParams:
        if (self.chat_id is None) == (not self.all):
            raise ValueError("give chatId or all: true")
        return self


class SearchParams(FolderParams):
    """Params of ``openLlm/chat/search``."""

    query: str = Field(min_length=1)
    folder_id: str | None = None
    limit: int = Field(20, ge=1, le=200)


class FolderCreateParams(FolderParams):
    """Params of ``openLlm/chat/folder/create``."""

    name: str


class FolderIdParams(FolderParams):
    """Params naming a chat folder."""

    folder_id: str = Field(min_length=1)


class FolderRenameParams(FolderIdParams):
    """Params of ``openLlm/chat/folder/rename``."""

    name: str


class MoveParams(ChatIdParams):
    """Params of ``openLlm/chat/move``: ``folderId`` null moves out of any folder."""

    folder_id: str | None


class BranchParams(MessageIdParams):
    """Params of ``openLlm/chat/branch``."""

    title: str | None = None


class ExportParams(ChatIdParams):
    """Params of ``openLlm/chat/export``."""

    format: Literal["json", "markdown"] = "json"


class ImportParams(FolderParams):
    """Params of ``openLlm/chat/import``: the export as an object or as JSON text."""

    data: dict[str, Any] | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ImportParams:
        if (self.data is None) == (self.text is None):
            raise ValueError("give exactly one of data or text")
        return self


class PositionParam(Params):
    """An LSP position (zero-based line, UTF-16 character)."""

    line: int = Field(ge=0)
    character: int = Field(ge=0)


class RangeParam(Params):
    """An LSP range."""

    start: PositionParam
    end: PositionParam


class AttachmentParam(Params):
    """A document (open in the editor, else read from disk) or a range of it."""

    uri: str = Field(min_length=1)
    range: RangeParam | None = None


class SamplingOverride(Params):
    """Sampling values that replace the preset's for one request."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0, le=1000)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, ge=0.5, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    stop: list[str] | None = Field(None, max_length=32)
    seed: int | None = Field(None, ge=0, le=4_294_967_295)


class AnswerOptions(FolderParams):
    """What every request that generates an answer accepts."""

    preset_id: str | None = None
    sampling: SamplingOverride | None = None
    request_id: str | None = None
    generate_title: bool = True


class SendParams(AnswerOptions):
    """Params of ``openLlm/chat/send``."""

    chat_id: str = Field(min_length=1)
    content: str
    attachments: list[AttachmentParam] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _not_empty(self) -> SendParams:
        if not self.content.strip() and not self.attachments:
            raise ValueError("content: the message is empty")
        return self


class EditParams(AnswerOptions):
    """Params of ``openLlm/chat/edit``."""

    message_id: str = Field(min_length=1)
    content: str
    attachments: list[AttachmentParam] | None = None
    generate: bool = True


class RegenerateParams(AnswerOptions):
    """Params of ``openLlm/chat/regenerate``."""

    message_id: str = Field(min_length=1)


class CancelParams(Params):
    """Params of ``openLlm/chat/cancel``."""

    chat_id: str | None = None
    request_id: str | None = None

    @model_validator(mode="after")
    def _one(self) -> CancelParams:
        if self.chat_id is None and self.request_id is None:
            raise ValueError("give chatId or requestId")
        return self


class RenderParams(AnswerOptions):
    """Params of ``openLlm/chat/renderPrompt``."""

    chat_id: str | None = None
    message_id: str | None = None
    content: str | None = None
    attachments: list[AttachmentParam] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _target(self) -> RenderParams:
        if self.chat_id is None and self.message_id is None:
            raise ValueError("give chatId or messageId")
        return self


class StartParams(FolderParams):
    """Argument of the ``openLlm.chat.start`` command (what code actions send)."""

    title: str | None = None
    content: str
    attachments: list[AttachmentParam] = Field(default_factory=list, max_length=32)
    action: str | None = None
    diagnostics: list[dict[str, Any]] = Field(default_factory=list)
    preset_id: str | None = None
    sampling: SamplingOverride | None = None
    request_id: str | None = None


# ---------------------------------------------------------------------------
# The service: stores per folder, running answers
# ---------------------------------------------------------------------------


class _Flusher:
    """Write a streaming answer at most ``interval`` seconds after it changed."""

    def __init__(self, write: Callable[[], None], interval: float = FLUSH_INTERVAL_S) -> None:
        self._write = write
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0
        self.closed = False

    def changed(self) -> None:
        if self._handle is not None or self.closed:
            return
        delay = max(0.0, self._last + self._interval - self._loop.time())
        self._handle = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self.closed:
            return
        self._last = self._loop.time()
        self._write()

    def close(self) -> None:
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Answer:
    """One answer being generated: its request id, cancel token and raw streamed text."""

    def __init__(self, chat_id: str, request_id: str) -> None:
        self.chat_id = chat_id
        self.request_id = request_id
        self.raw: list[str] = []
        self.cancel = CancelToken()


class ChatService:
    """Chat stores of the open workspace folders and the answers being generated."""

    def __init__(self, ls: OpenLlmServer) -> None:
        self.ls = ls
        self._stores: dict[str, ChatStore] = {}
        self.running: dict[str, _Answer] = {}
        self._storage_warned: set[str] = set()

    # -- stores -----------------------------------------------------------------------

    def folders(self) -> list[str]:
        """Normalized URIs of the open workspace folders (or the no-workspace key)."""
        uris = [normalize_folder_uri(u) for u in self.ls.folder_uris()]
        return list(dict.fromkeys(uris)) or [NO_WORKSPACE]

    def _open(self, uri: str) -> ChatStore:
        store = self._stores.get(uri)
        if store is None:
            store = ChatStore(uri)
            self._stores[uri] = store
            if store.recovered_from is not None:
                self.ls.show(
                    f"Open LLM: the chat database of {_folder_label(uri)} was damaged. It was "
                    f"moved to {store.recovered_from} and a new, empty one was started.",
                    types.MessageType.Warning,
                )
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
        for store in self.stores(folder_uri):
            try:
                store.get_chat_info(chat_id)
            except NotFound:
                continue
            return store
        raise NotFound(f"No chat with id {chat_id!r}.", data={"chatId": chat_id})

    def store_of_message(self, message_id: str, folder_uri: str | None = None) -> ChatStore:
        """The store holding ``message_id``."""
        for store in self.stores(folder_uri):
            try:
                store.get_message(message_id)
            except NotFound:
                continue
            return store
        raise NotFound(f"No message with id {message_id!r}.", data={"messageId": message_id})

    def store_of_folder(self, folder_id: str, folder_uri: str | None = None) -> ChatStore:
        """The store holding the chat folder ``folder_id``."""
        for store in self.stores(folder_uri):
            if any(f.id == folder_id for f in store.list_folders()):
                return store
        raise NotFound(f"No folder with id {folder_id!r}.", data={"folderId": folder_id})

    def warn_storage(self, store: ChatStore, exc: StorageError) -> None:
        """Tell the user once per folder that chats are not being saved."""
        log.error("chat storage failed for %s: %s", store.folder_uri, exc.message)
        if store.folder_uri in self._storage_warned:
            return
        self._storage_warned.add(store.folder_uri)
        self.ls.show(
            f"Open LLM could not save the chat: {exc.message} The answer is still shown, "
            "but it is not kept.",
            types.MessageType.Error,
        )

    def close(self) -> None:
        """Close every store."""
        for store in self._stores.values():
            store.close()
        self._stores.clear()

    # -- listing across folders ---------------------------------------------------------

    def list_chats(self, p: ListParams) -> dict[str, Any]:
        """A page of chats: one folder's, or merged across the open folders."""
        stores = self.stores(p.folder_uri)
        if p.folder_id:
            stores = [self.store_of_folder(p.folder_id, p.folder_uri)]
        if len(stores) == 1:
            store = stores[0]
            if p.trash:
                page = store.list_trash(offset=p.offset, limit=p.limit)
            else:
                page = store.list_chats(
                    sort=p.sort,
                    descending=p.descending,
                    folder_id=p.folder_id,
                    offset=p.offset,
                    limit=p.limit,
                )
            return page.to_dict()
        desc = (p.sort != "title") if p.descending is None else p.descending
        items: list[Chat] = []
        total = 0
        for store in stores:
            if p.trash:
                page = store.list_trash(offset=0, limit=p.offset + p.limit)
            else:
                page = store.list_chats(
                    sort=p.sort,
                    descending=desc,
                    folder_id=p.folder_id,  # "" (chats in no folder) or None here
                    offset=0,
                    limit=p.offset + p.limit,
                )
            items.extend(page.items)
            total += page.total
        if p.trash:
            items.sort(key=lambda c: c.deleted_at or 0, reverse=True)
        else:
            items.sort(key=lambda c: _sort_key(c, p.sort), reverse=desc)
            items.sort(key=lambda c: not c.pinned)
        page = ChatPage(
            items=items[p.offset : p.offset + p.limit], total=total, offset=p.offset, limit=p.limit
        )
        return page.to_dict()

    def search(self, p: SearchParams) -> list[SearchHit]:
        """Search one folder (or chat folder), or every open folder, best first."""
        if p.folder_id:
            store = self.store_of_folder(p.folder_id, p.folder_uri)
            return store.search(p.query, limit=p.limit, folder_id=p.folder_id)
        hits: list[SearchHit] = []
        for store in self.stores(p.folder_uri):
            hits.extend(store.search(p.query, limit=p.limit))
        hits.sort(key=lambda h: (h.score, h.updated_at), reverse=True)
        return hits[: p.limit]

    # -- attachments ---------------------------------------------------------------------

    def read_attachments(
        self, items: list[AttachmentParam], folder_uri: str
    ) -> list[dict[str, Any]]:
        """Resolve attachments to stored records holding the text they contribute."""
        out = []
        for item in items:
            text, language = self._read_document(item.uri)
            rng = item.range.model_dump() if item.range is not None else None
            path = _display_path(item.uri, folder_uri)
            out.append(Attachment.make(item.uri, path, text, rng=rng, language=language).to_dict())
        return out

    def _read_document(self, uri: str) -> tuple[str, str]:
        doc = self.ls.workspace.text_documents.get(unquote(uri))
        return read_attachment(  # refuses secrets, shares, links out of the workspace...
            uri,
            opened=(doc.source, doc.language_id or "") if doc is not None else None,
            roots=[p for f in self.ls.folder_uris() if (p := uri_to_path(f))],
            secret_globs=self.ls.settings.completion.secret_globs,
            limit=MAX_FILE_BYTES,
        )

    # -- presets and prompts -------------------------------------------------------------

    def preset_for(self, folder_uri: str, preset_id: str | None) -> Any:
        """The preset entry to use: ``preset_id``'s, else the folder's active preset."""
        manager = self.ls.presets()
        if preset_id:
            scope = folder_uri if folder_uri != NO_WORKSPACE else None
            return manager.get(preset_id, scope)
        return manager.active(folder_uri).entry

    def sampling_for(self, preset: Any, override: SamplingOverride | None) -> dict[str, Any]:
        """The preset's sampling with the request's overrides (camelCase, for the wire)."""
        base = preset.sampling
        values: dict[str, Any] = {
            "temperature": base.temperature,
            "topP": base.top_p,
            "topK": base.top_k,
            "minP": base.min_p,
            "repeatPenalty": base.repeat_penalty,
            "presencePenalty": base.presence_penalty,
            "frequencyPenalty": base.frequency_penalty,
            "maxTokens": base.max_tokens,
            "stop": list(base.stop),
            "seed": base.seed,
        }
        if override is not None:
            for key, value in override.model_dump(by_alias=True, exclude_none=True).items():
                values[key] = value
        if values["seed"] is None and self.ls.settings.seed >= 0:
            values["seed"] = self.ls.settings.seed
        return values

    async def plan(
        self,
        engine: AnyEngine,
        system: str,
        history: list[Message],
        user_text: str,
        max_tokens: int,
        *,
        reserve: int | None = None,
    ) -> tuple[PromptPlan, bool]:
        """Render and fit the prompt; return it and whether the engine must add BOS."""

        async def render(messages: list[dict[str, str]]) -> str:
            return await engine.render_chat(messages)

        async def count(text: str) -> int:
            return len(await engine.tokenize(text, add_bos=_needs_bos(engine, text), special=True))

        n_ctx = engine.info.context_length
        plan = await fit_history(
            system,
            history_messages(history),
            {"role": "user", "content": user_text},
            render=render,
            count=count,
            context_length=n_ctx,
            reserve=answer_reserve(max_tokens, n_ctx) if reserve is None else reserve,
        )
        return plan, _needs_bos(engine, plan.text)

    # -- answering ----------------------------------------------------------------------

    async def answer(
        self,
        *,
        store: ChatStore,
        chat: Chat,
        history: list[Message],
        content: str,
        attachments: list[dict[str, Any]],
        save_user: Callable[[], Message] | None,
        user: Message | None,
        opts: AnswerOptions,
    ) -> dict[str, Any]:
        """Answer a user message: persist it (``save_user``) or answer ``user`` again."""
        if chat.id in self.running:
            raise Conflict(
                "An answer is already being generated in this chat: wait for it or cancel it.",
                data={"chatId": chat.id},
            )
        state = _Answer(chat.id, opts.request_id or f"chat-{new_id()}")
        self.running[chat.id] = state
        self.ls.streams[state.request_id] = state.cancel.cancel
        try:
            return await self._answer(
                state, store, chat, history, content, attachments, save_user, user, opts
            )
        finally:
            self.running.pop(chat.id, None)
            self.ls.streams.pop(state.request_id, None)

    async def _answer(
        self,
        state: _Answer,
        store: ChatStore,
        chat: Chat,
        history: list[Message],
        content: str,
        attachments: list[dict[str, Any]],
        save_user: Callable[[], Message] | None,
        user: Message | None,
        opts: AnswerOptions,
    ) -> dict[str, Any]:
        ls = self.ls
        engine = await ls.manager().engine("chat")
        entry = self.preset_for(store.folder_uri, opts.preset_id)
        preset = entry.preset
        system = chat.system_prompt if chat.system_prompt is not None else preset.system_prompt
        sampling = self.sampling_for(preset, opts.sampling)
        plan, add_bos = await self.plan(
            engine, system, history, user_prompt_text(content, attachments), sampling["maxTokens"]
        )
        truncation = plan.truncation.to_dict() if plan.truncation is not None else None
        first_exchange = not any(m.role == "assistant" for m in history)
        wants_title = first_exchange and chat.title == DEFAULT_TITLE
        title = chat.title
        model_name = engine.info.name
        request_id = state.request_id

        # Persist the user message and an empty, incomplete answer before generating.
        saved = True
        storage_error: StorageError | None = None
        try:
            if user is None:
                assert save_user is not None
                user = save_user()
            if wants_title:
                title = fallback_title(content or _attachment_label(attachments))
                store.rename_chat(chat.id, title)
            store.update_chat(chat.id, preset=entry.snapshot(), model=model_name)
            message = store.append_message(
                chat.id,
                user.id,
                "assistant",
                "",
                incomplete=True,
                stats=MessageStats(model=model_name, truncation=truncation),
            )
        except StorageError as exc:
            saved = False
            storage_error = exc
            self.warn_storage(store, exc)
            if user is None:
                user = _memory_message(chat.id, _leaf(history), "user", content, attachments)
            message = _memory_message(chat.id, user.id, "assistant", "", [])
            message.incomplete = True
        asked: Message = user
        splitter = ThinkingSplitter(open_close_tag=starts_in_thinking(plan.text))

        def write_partial() -> None:
            nonlocal saved, storage_error
            if not saved:
                return
            try:
                store.update_message(
                    message.id, content=splitter.answer, thinking=splitter.thinking.strip()
                )
            except StorageError as exc:
                saved = False
                storage_error = exc
                self.warn_storage(store, exc)

        flusher = _Flusher(write_partial)

        def send_delta(answer: str, thinking: str) -> None:
            if answer or thinking:
                ls.notify(
                    methods.CHAT_DELTA,
                    {
                        "chatId": chat.id,
                        "messageId": message.id,
                        "requestId": request_id,
                        "delta": answer,
                        "thinking": thinking,
                        "done": False,
                        "stats": None,
                    },
                )

        def on_delta(text: str) -> None:
            state.raw.append(text)
            send_delta(*splitter.feed(text))
            flusher.changed()

        request = GenerationRequest(
            prompt=plan.text,
            max_tokens=sampling["maxTokens"],
            stop=list(sampling["stop"]),
            sampling=SamplingParams(
                temperature=sampling["temperature"],
                top_k=sampling["topK"],
                top_p=sampling["topP"],
                min_p=sampling["minP"],
                repeat_penalty=sampling["repeatPenalty"],
                presence_penalty=sampling["presencePenalty"],
                frequency_penalty=sampling["frequencyPenalty"],
                seed=sampling["seed"],
            ),
            priority=Priority.CHAT,
            add_bos=add_bos,
        )

        def finish(result: GenerationResult, error: str | None = None) -> dict[str, Any]:
            """Settle the text, write the final state, send the last delta (no awaits)."""
            nonlocal saved, storage_error
            flusher.close()
            seen = "".join(state.raw)
            if result.text.startswith(seen):
                send_delta(*splitter.feed(result.text[len(seen) :]))
            send_delta(*splitter.finish())
            stats = result.stats
            incomplete = stats.stop_reason == "cancelled" or error is not None
            wire_stats = stats.to_dict() | {"model": model_name, "truncation": truncation}
            if error is not None:
                wire_stats["error"] = error
            message.content = splitter.answer
            message.thinking = splitter.thinking.strip()
            message.incomplete = incomplete
            message.stats = MessageStats(
                prompt_tokens=stats.prompt_tokens,
                completion_tokens=stats.generated_tokens,
                ttft_ms=round(stats.first_token_ms, 2),
                tokens_per_s=round(stats.tokens_per_s, 2),
                stop_reason=stats.stop_reason or None,
                model=model_name,
                truncation=truncation,
            )
            if saved:
                try:
                    store.update_message(
                        message.id,
                        content=message.content,
                        thinking=message.thinking,
                        stats=message.stats,
                        incomplete=incomplete,
                    )
                except StorageError as exc:
                    saved = False
                    storage_error = exc
                    self.warn_storage(store, exc)
            ls.notify(
                methods.CHAT_DELTA,
                {
                    "chatId": chat.id,
                    "messageId": message.id,
                    "requestId": request_id,
                    "delta": "",
                    "thinking": "",
                    "done": True,
                    "incomplete": incomplete,
                    "stats": wire_stats,
                },
            )
            return wire_stats

        try:
            try:
                # The messages, not the rendered text: a remote server applies its template.
                result = await engine.chat(plan.messages, request, on_delta, state.cancel)
            except Cancelled as exc:  # openLlm/chat/cancel: answer with what was generated
                partial = exc.data.get("partial")
                result = (
                    partial
                    if isinstance(partial, GenerationResult)
                    else GenerationResult("".join(state.raw), _cancelled_stats(engine))
                )
            except asyncio.CancelledError:  # $/cancelRequest: keep the partial answer
                finish(GenerationResult("".join(state.raw), _cancelled_stats(engine)))
                raise
            except Exception as exc:
                finish(
                    GenerationResult("".join(state.raw), _cancelled_stats(engine, "error")),
                    error=str(exc),
                )
                raise
            wire_stats = finish(result)
        finally:
            flusher.close()
            ls.manager()._emit()

        if wants_title and saved and opts.generate_title and not message.incomplete:
            title = await self._generate_title(
                engine, store, chat.id, title, content, message, state.cancel
            )
        out: dict[str, Any] = {
            "chatId": chat.id,
            "requestId": request_id,
            "title": title,
            "userMessage": asked.to_dict(),
            "message": message.to_dict(),
            "text": message.content,
            "thinking": message.thinking,
            "incomplete": message.incomplete,
            "stats": wire_stats,
            "sampling": sampling,
            "presetId": entry.id,
            "truncation": truncation,
            "notice": truncation["notice"] if truncation else None,
            "saved": saved,
            "storageError": None,
        }
        if storage_error is not None:
            out["storageError"] = {
                "kind": storage_error.kind,
                "message": storage_error.message,
                **{k: v for k, v in storage_error.data.items() if isinstance(v, str)},
            }
        return out

    async def _generate_title(
        self,
        engine: AnyEngine,
        store: ChatStore,
        chat_id: str,
        current: str,
        question: str,
        answer: Message,
        cancel: CancelToken,
    ) -> str:
        """Ask the model for a short title; keep ``current`` (the fallback) on failure."""
        if not question.strip():
            return current
        try:
            result = await engine.chat(
                title_messages(question, answer.content),
                GenerationRequest(
                    max_tokens=TITLE_MAX_TOKENS,
                    stop=["\n"],
                    sampling=SamplingParams(temperature=0.0, repeat_penalty=1.1),
                    priority=Priority.CHAT,
                ),
                None,
                cancel,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a title is a nicety: keep the fallback
            log.warning("no generated title for chat %s: %s", chat_id, exc)
            return current
        splitter = ThinkingSplitter()
        splitter.feed(result.text)
        splitter.finish()
        title = clean_title(splitter.answer)
        if title is None:
            return current
        try:
            if store.get_chat_info(chat_id).title != current:
                return store.get_chat_info(chat_id).title  # renamed meanwhile: keep it
            store.rename_chat(chat_id, title)
        except (StorageError, NotFound, InvalidParams) as exc:
            log.warning("could not save the title of chat %s: %s", chat_id, exc)
            return current
        self.ls.notify(
            methods.CHAT_CHANGED,
            {
                "chatId": chat_id,
                "workspaceFolder": store.folder_uri,
                "reason": "titled",
                "title": title,
            },
        )
        return title

    async def send(self, p: SendParams) -> dict[str, Any]:
        """``openLlm/chat/send``: append a user message to the active branch and answer it."""
        store = self.store_of_chat(p.chat_id, p.folder_uri)
        detail = store.get_chat(p.chat_id)
        if detail.chat.deleted_at is not None:
            raise InvalidParams(
                "This chat is in the trash: restore it first.", data={"chatId": p.chat_id}
            )
        attachments = self.read_attachments(p.attachments, store.folder_uri)
        parent = _leaf(detail.messages)

        def save_user() -> Message:
            return store.append_message(
                p.chat_id, parent, "user", p.content, attachments=attachments or None
            )

        return await self.answer(
            store=store,
            chat=detail.chat,
            history=detail.messages,
            content=p.content,
            attachments=attachments,
            save_user=save_user,
            user=None,
            opts=p,
        )

    async def edit(self, p: EditParams) -> dict[str, Any]:
        """``openLlm/chat/edit``: a new user sibling (a new branch), answered by default."""
        store = self.store_of_message(p.message_id, p.folder_uri)
        original = store.get_message(p.message_id)
        if original.role != "user":
            raise InvalidParams(
                f"Message {p.message_id!r} is a {original.role} message; only user messages "
                "can be edited.",
                data={"messageId": p.message_id},
            )
        attachments = (
            original.attachments
            if p.attachments is None
            else self.read_attachments(p.attachments, store.folder_uri)
        )
        if not p.content.strip() and not attachments:
            raise InvalidParams("content: the message is empty")
        chat = store.get_chat_info(original.chat_id)
        history = store.get_history(original.parent_id) if original.parent_id else []

        def save_user() -> Message:
            return store.edit_user_message(p.message_id, p.content, attachments=attachments)

        if not p.generate:
            user = save_user()
            return {"chatId": chat.id, "userMessage": user.to_dict(), "message": None}
        return await self.answer(
            store=store,
            chat=chat,
            history=history,
            content=p.content,
            attachments=attachments,
            save_user=save_user,
            user=None,
            opts=p,
        )

    async def regenerate(self, p: RegenerateParams) -> dict[str, Any]:
        """``openLlm/chat/regenerate``: answer a user message again, as a new sibling."""
        store = self.store_of_message(p.message_id, p.folder_uri)
        user = store.prepare_regenerate(p.message_id)
        chat = store.get_chat_info(user.chat_id)
        history = store.get_history(user.parent_id) if user.parent_id else []
        return await self.answer(
            store=store,
            chat=chat,
            history=history,
            content=user.content,
            attachments=user.attachments,
            save_user=None,
            user=user,
            opts=p,
        )

    async def render_prompt(self, p: RenderParams) -> dict[str, Any]:
        """``openLlm/chat/renderPrompt``: the prompt that was or would be sent."""
        engine = await self.ls.manager().engine("chat")
        reserve: int | None = None
        snapshot: dict[str, Any] | None = None
        if p.message_id is not None:
            store = self.store_of_message(p.message_id, p.folder_uri)
            target = store.get_message(p.message_id)
            chat = store.get_chat_info(target.chat_id)
            user = target
            if target.role == "assistant" and target.parent_id is not None:
                user = store.get_message(target.parent_id)
            if user.role != "user":
                raise InvalidParams(
                    f"Message {p.message_id!r} does not answer a user message.",
                    data={"messageId": p.message_id},
                )
            history = store.get_history(user.parent_id) if user.parent_id else []
            content, attachments = user.content, user.attachments
            if target.role == "assistant" and p.preset_id is None and p.sampling is None:
                # The prompt that was sent: the chat's preset snapshot, the same budget.
                snapshot = chat.preset
                stored = target.stats.truncation if target.stats is not None else None
                budget = stored.get("budgetTokens") if stored else None
                n_ctx = engine.info.context_length
                reserve = n_ctx - int(budget) if isinstance(budget, int) else 0
        else:
            assert p.chat_id is not None
            store = self.store_of_chat(p.chat_id, p.folder_uri)
            detail = store.get_chat(p.chat_id)
            chat = detail.chat
            if p.content is None and not p.attachments:
                leaf = detail.messages[-1] if detail.messages else None
                if leaf is None or leaf.role != "user":
                    raise InvalidParams(
                        "Give content (the message to send) or messageId (a sent message)."
                    )
                history = detail.messages[:-1]
                content, attachments = leaf.content, leaf.attachments
            else:
                history = detail.messages
                content = p.content or ""
                attachments = self.read_attachments(p.attachments, store.folder_uri)
        preset: Any
        if snapshot is not None:
            preset = _SnapshotPreset(snapshot)
            preset_id = str(snapshot.get("id", ""))
        else:
            entry = self.preset_for(store.folder_uri, p.preset_id)
            preset, preset_id = entry.preset, entry.id
        system = chat.system_prompt if chat.system_prompt is not None else preset.system_prompt
        sampling = self.sampling_for(preset, p.sampling)
        plan, add_bos = await self.plan(
            engine,
            system,
            history,
            user_prompt_text(content, attachments),
            sampling["maxTokens"],
            reserve=reserve,
        )
        truncation = plan.truncation.to_dict() if plan.truncation is not None else None
        return {
            "chatId": chat.id,
            "text": plan.text,
            "tokens": plan.tokens,
            "addBos": add_bos,
            "messages": plan.messages,
            "systemPrompt": system,
            "presetId": preset_id,
            "sampling": sampling,
            "contextLength": plan.context_length,
            "budgetTokens": plan.budget_tokens,
            "reserveTokens": plan.reserve_tokens,
            "truncation": truncation,
            "notice": truncation["notice"] if truncation else None,
        }

    async def start(self, p: StartParams) -> dict[str, Any]:
        """The ``openLlm.chat.start`` command: a new chat about a selection, answered."""
        folder = p.folder_uri
        if folder is None and p.attachments:
            folder = self.ls.folder_for(p.attachments[0].uri)
        store = self.store(folder)
        attachments = self.read_attachments(p.attachments, store.folder_uri)
        content = p.content
        if p.action is not None:
            from lsp_server.chat.actions import ACTIONS_BY_ID, action_question

            action = ACTIONS_BY_ID.get(p.action)
            if action is None:
                raise InvalidParams(f"Unknown action {p.action!r}.")
            if not content.strip():
                content = action_question(action, p.diagnostics)
        if not content.strip() and not attachments:
            raise InvalidParams("content: the message is empty")
        chat = store.create_chat(p.title)
        self.ls.notify(
            methods.CHAT_CHANGED,
            {
                "chatId": chat.id,
                "workspaceFolder": store.folder_uri,
                "reason": "created",
                "title": chat.title,
            },
        )

        def save_user() -> Message:
            return store.append_message(
                chat.id, None, "user", content, attachments=attachments or None
            )

        opts = AnswerOptions(
            folder_uri=store.folder_uri,
            preset_id=p.preset_id,
            sampling=p.sampling,
            request_id=p.request_id,
            generate_title=p.title is None,
        )
        return await self.answer(
            store=store,
            chat=chat,
            history=[],
            content=content,
            attachments=attachments,
            save_user=save_user,
            user=None,
            opts=opts,
        )

    def cancel(self, p: CancelParams) -> bool:
        """Stop the answer of a chat (or of a request id); False when none is running."""
        for state in list(self.running.values()):
            if state.chat_id == p.chat_id or (
                p.request_id is not None and state.request_id == p.request_id
            ):
                state.cancel.cancel()
                return True
        return False


class _SnapshotPreset:
    """The parts of a stored preset snapshot a prompt needs (system prompt, sampling)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        from lsp_server.presets import Preset

        try:
            preset = Preset.from_snapshot(snapshot)
        except ValueError:
            preset = Preset.model_validate(
                {"id": "snapshot", "name": "snapshot", "systemPrompt": ""}
            )
        self.system_prompt = preset.system_prompt
        self.sampling = preset.sampling


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _sort_key(chat: Chat, sort: str) -> Any:
    if sort == "title":
        return chat.title.casefold()
    return chat.created_at if sort == "created" else chat.updated_at


def _folder_label(uri: str) -> str:
    if uri == NO_WORKSPACE:
        return "chats outside any workspace"
    return to_fs_path(uri) or uri


def _display_path(uri: str, folder_uri: str) -> str:
    """A document's path relative to the workspace folder when inside it."""
    path = to_fs_path(uri) if "://" in uri else uri
    if path is None:
        return uri
    base = to_fs_path(folder_uri) if folder_uri != NO_WORKSPACE else None
    if base:
        try:
            return Path(path).relative_to(base).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def _attachment_label(attachments: list[dict[str, Any]]) -> str:
    for item in attachments:
        name = item.get("name") or item.get("path")
        if name:
            return f"About {name}"
    return DEFAULT_TITLE


def _leaf(messages: list[Message]) -> str | None:
    return messages[-1].id if messages else None


def _needs_bos(engine: AnyEngine, text: str) -> bool:
    if not isinstance(engine, LocalEngine):
        return True  # the server adds what its template needs
    return engine.needs_bos(text)


def _cancelled_stats(engine: AnyEngine, reason: str = "cancelled") -> GenerationStats:
    stats = engine.last_stats
    out = GenerationStats(**vars(stats)) if stats is not None else GenerationStats()
    out.stop_reason = reason
    return out


def _memory_message(
    chat_id: str, parent: str | None, role: str, content: str, attachments: list[dict[str, Any]]
) -> Message:
    """A message kept in memory only (the database could not be written)."""
    return Message(
        id=new_id(),
        chat_id=chat_id,
        parent_id=parent,
        role=role,
        content=content,
        thinking="",
        attachments=attachments,
        created_at=now_ms(),
        incomplete=False,
        stats=MessageStats() if role == "assistant" else None,
    )


_SERVICES: weakref.WeakKeyDictionary[OpenLlmServer, ChatService] = weakref.WeakKeyDictionary()


def service(ls: OpenLlmServer) -> ChatService:
    """The chat service of a server (created on first use)."""
    svc = _SERVICES.get(ls)
    if svc is None:
        svc = ChatService(ls)
        _SERVICES[ls] = svc
    return svc


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


def register(ls: OpenLlmServer) -> None:
    """Register every ``openLlm/chat/*`` request, and the chat code actions."""
    from lsp_server.protocol.features import code_actions

    svc = service(ls)
    code_actions.register(ls)

    @custom_request(ls, methods.CHAT_CREATE, CreateParams)
    async def on_create(ls: OpenLlmServer, p: CreateParams) -> Any:
        store = svc.store(p.folder_uri)
        preset = None
        if p.preset_id is not None:
            preset = svc.preset_for(store.folder_uri, p.preset_id).snapshot()
        return store.create_chat(
            p.title, folder_id=p.folder_id, preset=preset, system_prompt=p.system_prompt
        ).to_dict()

    @custom_request(ls, methods.CHAT_LIST, ListParams)
    async def on_list(ls: OpenLlmServer, p: ListParams) -> Any:
        return svc.list_chats(p)

    @custom_request(ls, methods.CHAT_GET, ChatIdParams)
    async def on_get(ls: OpenLlmServer, p: ChatIdParams) -> Any:
        detail = svc.store_of_chat(p.chat_id, p.folder_uri).get_chat(p.chat_id).to_dict()
        detail["generating"] = p.chat_id in svc.running
        return detail

    @custom_request(ls, methods.CHAT_RENAME, RenameParams)
    async def on_rename(ls: OpenLlmServer, p: RenameParams) -> Any:
        return svc.store_of_chat(p.chat_id, p.folder_uri).rename_chat(p.chat_id, p.title).to_dict()

    @custom_request(ls, methods.CHAT_UPDATE, UpdateParams)
    async def on_update(ls: OpenLlmServer, p: UpdateParams) -> Any:
        store = svc.store_of_chat(p.chat_id, p.folder_uri)
        return store.update_chat(p.chat_id, system_prompt=p.system_prompt).to_dict()

    @custom_request(ls, methods.CHAT_DUPLICATE, DuplicateParams)
    async def on_duplicate(ls: OpenLlmServer, p: DuplicateParams) -> Any:
        store = svc.store_of_chat(p.chat_id, p.folder_uri)
        return store.duplicate_chat(p.chat_id, p.title).to_dict()

    @custom_request(ls, methods.CHAT_DELETE, ChatIdParams)
    async def on_delete(ls: OpenLlmServer, p: ChatIdParams) -> Any:
        svc.store_of_chat(p.chat_id, p.folder_uri).delete_chat(p.chat_id)
        return {"chatId": p.chat_id, "deleted": True}

    @custom_request(ls, methods.CHAT_CLEAR_ALL, FolderParams)
    async def on_clear_all(ls: OpenLlmServer, p: FolderParams) -> Any:
        return {"trashed": sum(store.clear_all() for store in svc.stores(p.folder_uri))}

    @custom_request(ls, methods.CHAT_RESTORE, RestoreParams)
    async def on_restore(ls: OpenLlmServer, p: RestoreParams) -> Any:
        if p.chat_id is not None:
            chat = svc.store_of_chat(p.chat_id, p.folder_uri).restore_chat(p.chat_id)
            return {"restored": 1, "chat": chat.to_dict()}
        return {"restored": sum(s.restore_all() for s in svc.stores(p.folder_uri)), "chat": None}

    @custom_request(ls, methods.CHAT_EMPTY_TRASH, FolderParams)
    async def on_empty_trash(ls: OpenLlmServer, p: FolderParams) -> Any:
        return {"deleted": sum(store.empty_trash() for store in svc.stores(p.folder_uri))}

    @custom_request(ls, methods.CHAT_SEARCH, SearchParams)
    async def on_search(ls: OpenLlmServer, p: SearchParams) -> Any:
        return {"hits": [hit.to_dict() for hit in svc.search(p)]}

    @custom_request(ls, methods.CHAT_FOLDER_LIST, FolderParams)
    async def on_folder_list(ls: OpenLlmServer, p: FolderParams) -> Any:
        folders = []
        for store in svc.stores(p.folder_uri):
            for folder in store.list_folders():
                folders.append(folder.to_dict() | {"workspaceFolder": store.folder_uri})
        return {"folders": folders}

    @custom_request(ls, methods.CHAT_FOLDER_CREATE, FolderCreateParams)
    async def on_folder_create(ls: OpenLlmServer, p: FolderCreateParams) -> Any:
        store = svc.store(p.folder_uri)
        return store.create_folder(p.name).to_dict() | {"workspaceFolder": store.folder_uri}

    @custom_request(ls, methods.CHAT_FOLDER_RENAME, FolderRenameParams)
    async def on_folder_rename(ls: OpenLlmServer, p: FolderRenameParams) -> Any:
        store = svc.store_of_folder(p.folder_id, p.folder_uri)
        folder = store.rename_folder(p.folder_id, p.name)
        return folder.to_dict() | {"workspaceFolder": store.folder_uri}

    @custom_request(ls, methods.CHAT_FOLDER_DELETE, FolderIdParams)
    async def on_folder_delete(ls: OpenLlmServer, p: FolderIdParams) -> Any:
        store = svc.store_of_folder(p.folder_id, p.folder_uri)
        return {"folderId": p.folder_id, "movedChats": store.delete_folder(p.folder_id)}

    @custom_request(ls, methods.CHAT_MOVE, MoveParams)
    async def on_move(ls: OpenLlmServer, p: MoveParams) -> Any:
        store = svc.store_of_chat(p.chat_id, p.folder_uri)
        return store.move_chat(p.chat_id, p.folder_id).to_dict()

    @custom_request(ls, methods.CHAT_PIN, ChatIdParams)
    async def on_pin(ls: OpenLlmServer, p: ChatIdParams) -> Any:
        return svc.store_of_chat(p.chat_id, p.folder_uri).set_pinned(p.chat_id, True).to_dict()

    @custom_request(ls, methods.CHAT_UNPIN, ChatIdParams)
    async def on_unpin(ls: OpenLlmServer, p: ChatIdParams) -> Any:
        return svc.store_of_chat(p.chat_id, p.folder_uri).set_pinned(p.chat_id, False).to_dict()

    @custom_request(ls, methods.CHAT_BRANCH, BranchParams)
    async def on_branch(ls: OpenLlmServer, p: BranchParams) -> Any:
        store = svc.store_of_message(p.message_id, p.folder_uri)
        return store.branch_chat(p.message_id, p.title).to_dict()

    @custom_request(ls, methods.CHAT_SWITCH_BRANCH, MessageIdParams)
    async def on_switch(ls: OpenLlmServer, p: MessageIdParams) -> Any:
        return (
            svc.store_of_message(p.message_id, p.folder_uri).switch_branch(p.message_id).to_dict()
        )

    @custom_request(ls, methods.CHAT_EXPORT, ExportParams)
    async def on_export(ls: OpenLlmServer, p: ExportParams) -> Any:
        store = svc.store_of_chat(p.chat_id, p.folder_uri)
        if p.format == "markdown":
            return {"format": "markdown", "text": store.export_markdown(p.chat_id), "data": None}
        data = store.export_json(p.chat_id)
        text = json.dumps(data, ensure_ascii=False, indent=2)
        return {"format": "json", "text": text, "data": data}

    @custom_request(ls, methods.CHAT_IMPORT, ImportParams)
    async def on_import(ls: OpenLlmServer, p: ImportParams) -> Any:
        data = p.data
        if data is None:
            try:
                data = json.loads(p.text or "")
            except ValueError as exc:
                raise InvalidParams(f"text: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidParams("text: a chat export is a JSON object")
        return svc.store(p.folder_uri).import_json(data).to_dict()

    @custom_request(ls, methods.CHAT_SEND, SendParams)
    async def on_send(ls: OpenLlmServer, p: SendParams) -> Any:
        return await svc.send(p)

    @custom_request(ls, methods.CHAT_EDIT, EditParams)
    async def on_edit(ls: OpenLlmServer, p: EditParams) -> Any:
        return await svc.edit(p)

    @custom_request(ls, methods.CHAT_REGENERATE, RegenerateParams)
    async def on_regenerate(ls: OpenLlmServer, p: RegenerateParams) -> Any:
        return await svc.regenerate(p)

    @custom_request(ls, methods.CHAT_CANCEL, CancelParams)
    async def on_cancel(ls: OpenLlmServer, p: CancelParams) -> Any:
        return {"cancelled": svc.cancel(p)}

    @custom_request(ls, methods.CHAT_RENDER_PROMPT, RenderParams)
    async def on_render(ls: OpenLlmServer, p: RenderParams) -> Any:
        return await svc.render_prompt(p)
