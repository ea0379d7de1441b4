"""The chat service: chats per workspace folder and answers streamed from the chat model.

Plain Python (no LSP): the protocol layer (``lsp_server/protocol/features/chat.py``)
validates params, makes one call here and turns the returned records into JSON. What the
service needs from the server around it (open folders and documents, the engine, presets,
settings, messages to the user, notifications) comes through a :class:`ChatHost`.

Answers (``send``, ``edit``, ``regenerate``, ``start``) build the prompt from the system
prompt (the chat's override, else the preset's) and the active branch through the model's
chat template, dropping the oldest turns when the context is too small (and saying so),
then run as an :class:`~lsp_server.chat.answer.AnswerRun`: streamed as deltas, saved as
they stream, one answer at a time per chat.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lsp_server.chat.actions import ACTIONS_BY_ID, action_question
from lsp_server.chat.answer import AnswerRun
from lsp_server.chat.attachments import user_prompt_text
from lsp_server.chat.documents import read_attachments
from lsp_server.chat.prompt import plan_prompt
from lsp_server.chat.records import (
    AnswerOptions,
    AnswerResult,
    AttachmentRef,
    ChatChange,
    ChatDelta,
    PromptView,
    Sampling,
    StorageProblem,
)
from lsp_server.chat.stores import NO_WORKSPACE, ChatStores
from lsp_server.chat.titles import fallback_title, generate_title
from lsp_server.config.settings import Settings
from lsp_server.core.errors import Cancelled, Conflict, InvalidParams, NotFound, StorageError
from lsp_server.core.uris import uri_to_path
from lsp_server.engine.base import (
    CancelToken,
    Engine,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    Priority,
)
from lsp_server.presets import Preset, PresetEntry, PresetManager
from lsp_server.storage import DEFAULT_TITLE, Chat, ChatStore, Message
from lsp_server.storage.records import new_id

log = logging.getLogger(__name__)


class ChatHost(Protocol):
    """What the chat service needs from the server around it."""

    @property
    def streams(self) -> dict[str, Callable[[], None]]:
        """Cancel callbacks of streaming requests by request id (``openLlm/cancel``)."""
        ...

    def folder_uris(self) -> list[str]:
        """The open workspace folders' URIs."""
        ...

    def folder_for(self, uri: str | None) -> str | None:
        """The workspace folder containing ``uri`` (else the first one)."""
        ...

    def open_document(self, uri: str) -> tuple[str, str] | None:
        """The text and language id of a document open in the editor, else None."""
        ...

    async def chat_engine(self) -> Engine:
        """The engine of the chat role (loaded on demand)."""
        ...

    def engine_stats_changed(self) -> None:
        """An answer finished: the engine's last stats changed."""
        ...

    def presets(self) -> PresetManager:
        """The preset manager."""
        ...

    def settings(self) -> Settings:
        """The current settings."""
        ...

    def show_warning(self, message: str) -> None:
        """Show the user a warning they can act on."""
        ...

    def show_error(self, message: str) -> None:
        """Show the user an error they can act on."""
        ...

    def send_delta(self, delta: ChatDelta) -> None:
        """Send a piece of a streamed answer to the client."""
        ...

    def chat_changed(self, change: ChatChange) -> None:
        """Tell the client the server created or retitled a chat on its own."""
        ...


@dataclass(slots=True)
class _Question:
    """The user message an answer is for, and where it lives."""

    store: ChatStore
    chat: Chat
    history: list[Message]
    """The active branch before the question, root first."""
    content: str
    attachments: list[dict[str, Any]]
    save_user: Callable[[], Message] | None
    """Saves the question (a new or edited message) when the answer starts."""
    user: Message | None = None
    """The saved question when it is answered again (``save_user`` None)."""


class ChatService:
    """Chat stores of the open workspace folders and the answers being generated."""

    def __init__(self, host: ChatHost, stores: ChatStores | None = None) -> None:
        self.host = host
        self.stores = stores or ChatStores(host.folder_uris, on_recovered=self._recovered)
        self.running: dict[str, AnswerRun] = {}
        """The answer being generated in each chat, by chat id."""
        self._storage_warned: set[str] = set()

    def close(self) -> None:
        """Close every store."""
        self.stores.close()

    # -- chats (the rest is one call on ``stores`` or a store) -----------------------------

    def create(
        self,
        title: str | None = None,
        *,
        folder_id: str | None = None,
        system_prompt: str | None = None,
        preset_id: str | None = None,
        folder_uri: str | None = None,
    ) -> Chat:
        """Create an empty chat (with a snapshot of ``preset_id`` when given)."""
        store = self.stores.store(folder_uri)
        preset = None
        if preset_id is not None:
            preset = self.preset_for(store.folder_uri, preset_id).snapshot()
        return store.create_chat(
            title, folder_id=folder_id, preset=preset, system_prompt=system_prompt
        )

    def generating(self, chat_id: str) -> bool:
        """Whether an answer is being generated in the chat."""
        return chat_id in self.running

    # -- answers ------------------------------------------------------------------------

    async def send(
        self,
        chat_id: str,
        content: str,
        attachments: list[AttachmentRef],
        options: AnswerOptions,
        folder_uri: str | None = None,
    ) -> AnswerResult:
        """Append a user message to the active branch and answer it."""
        store = self.stores.store_of_chat(chat_id, folder_uri)
        detail = store.get_chat(chat_id)
        if detail.chat.deleted_at is not None:
            raise InvalidParams(
                "This chat is in the trash: restore it first.", data={"chatId": chat_id}
            )
        files = self.read_attachments(attachments, store.folder_uri)
        parent = detail.messages[-1].id if detail.messages else None

        def save_user() -> Message:
            return store.append_message(chat_id, parent, "user", content, attachments=files or None)

        question = _Question(store, detail.chat, detail.messages, content, files, save_user)
        return await self._answer(question, options)

    async def edit(
        self,
        message_id: str,
        content: str,
        attachments: list[AttachmentRef] | None,
        options: AnswerOptions,
        *,
        generate: bool = True,
        folder_uri: str | None = None,
    ) -> AnswerResult | Message:
        """A new user sibling (a new branch), answered unless ``generate`` is False.

        ``attachments`` None keeps the original's. Without generating, the new user
        message is returned.
        """
        store = self.stores.store_of_message(message_id, folder_uri)
        original = store.get_message(message_id)
        if original.role != "user":
            raise InvalidParams(
                f"Message {message_id!r} is a {original.role} message; only user messages "
                "can be edited.",
                data={"messageId": message_id},
            )
        files = (
            original.attachments
            if attachments is None
            else self.read_attachments(attachments, store.folder_uri)
        )
        if not content.strip() and not files:
            raise InvalidParams("content: the message is empty")
        chat = store.get_chat_info(original.chat_id)
        history = store.get_history(original.parent_id) if original.parent_id else []

        def save_user() -> Message:
            return store.edit_user_message(message_id, content, attachments=files)

        if not generate:
            return save_user()
        return await self._answer(
            _Question(store, chat, history, content, files, save_user), options
        )

    async def regenerate(
        self, message_id: str, options: AnswerOptions, folder_uri: str | None = None
    ) -> AnswerResult:
        """Answer a user message again (or an assistant message's question), as a sibling."""
        store = self.stores.store_of_message(message_id, folder_uri)
        user = store.prepare_regenerate(message_id)
        chat = store.get_chat_info(user.chat_id)
        history = store.get_history(user.parent_id) if user.parent_id else []
        question = _Question(store, chat, history, user.content, user.attachments, None, user)
        return await self._answer(question, options)

    async def start(
        self,
        content: str,
        attachments: list[AttachmentRef],
        options: AnswerOptions,
        *,
        title: str | None = None,
        action: str | None = None,
        diagnostics: list[dict[str, Any]] | None = None,
        folder_uri: str | None = None,
    ) -> AnswerResult:
        """A new chat about a selection (what code actions start), answered.

        ``action`` (a :data:`~lsp_server.chat.actions.ACTIONS` id) supplies the question
        when ``content`` is empty; the folder defaults to the first attachment's.
        """
        folder = folder_uri
        if folder is None and attachments:
            folder = self.host.folder_for(attachments[0].uri)
        store = self.stores.store(folder)
        files = self.read_attachments(attachments, store.folder_uri)
        if action is not None:
            found = ACTIONS_BY_ID.get(action)
            if found is None:
                raise InvalidParams(f"Unknown action {action!r}.")
            if not content.strip():
                content = action_question(found, diagnostics or [])
        if not content.strip() and not files:
            raise InvalidParams("content: the message is empty")
        chat = store.create_chat(title)
        self.host.chat_changed(ChatChange(chat.id, store.folder_uri, "created", chat.title))

        def save_user() -> Message:
            return store.append_message(chat.id, None, "user", content, attachments=files or None)

        options = dataclasses.replace(options, generate_title=title is None)
        return await self._answer(_Question(store, chat, [], content, files, save_user), options)

    def cancel(self, chat_id: str | None, request_id: str | None = None) -> bool:
        """Stop the answer of a chat (or of a request id); False when none is running."""
        for run in list(self.running.values()):
            if run.chat_id == chat_id or (request_id is not None and run.request_id == request_id):
                run.cancel.cancel()
                return True
        return False

    async def _answer(self, q: _Question, options: AnswerOptions) -> AnswerResult:
        """Answer a question, one answer at a time per chat (Conflict otherwise)."""
        if q.chat.id in self.running:
            raise Conflict(
                "An answer is already being generated in this chat: wait for it or cancel it.",
                data={"chatId": q.chat.id},
            )
        run = AnswerRun(
            q.chat.id,
            options.request_id or f"chat-{new_id()}",
            emit=self.host.send_delta,
            storage_failed=self.warn_storage,
        )
        streams = self.host.streams
        self.running[q.chat.id] = run
        streams[run.request_id] = run.cancel.cancel
        try:
            return await self._generate(run, q, options)
        finally:
            self.running.pop(q.chat.id, None)
            streams.pop(run.request_id, None)

    async def _generate(self, run: AnswerRun, q: _Question, options: AnswerOptions) -> AnswerResult:
        store, chat, history = q.store, q.chat, q.history
        engine = await self.host.chat_engine()
        entry = self.preset_for(store.folder_uri, options.preset_id)
        preset = entry.preset
        system = chat.system_prompt if chat.system_prompt is not None else preset.system_prompt
        sampling = self.sampling_for(preset, options.sampling)
        plan, add_bos = await plan_prompt(
            engine, system, history, user_prompt_text(q.content, q.attachments), sampling.max_tokens
        )
        truncation = plan.truncation.to_dict() if plan.truncation is not None else None
        first_exchange = not any(m.role == "assistant" for m in history)
        wants_title = first_exchange and chat.title == DEFAULT_TITLE
        run.start(
            store=store,
            chat=chat,
            user=q.user,
            save_user=q.save_user,
            history=history,
            content=q.content,
            attachments=q.attachments,
            new_title=fallback_title(q.content or _attachment_label(q.attachments))
            if wants_title
            else None,
            preset_snapshot=entry.snapshot(),
            model=engine.info.name,
            truncation=truncation,
            prompt=plan.text,
        )
        request = GenerationRequest(
            prompt=plan.text,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop),
            sampling=sampling.engine_params(),
            priority=Priority.CHAT,
            add_bos=add_bos,
        )
        try:
            try:
                # The messages, not the rendered text: a remote server applies its template.
                result = await engine.chat(plan.messages, request, run.on_delta, run.cancel)
            except Cancelled as exc:  # openLlm/chat/cancel: answer with what was generated
                partial = exc.data.get("partial")
                result = (
                    partial
                    if isinstance(partial, GenerationResult)
                    else run.partial(_cancelled_stats(engine))
                )
            except asyncio.CancelledError:  # $/cancelRequest: keep the partial answer
                run.finish(run.partial(_cancelled_stats(engine)))
                raise
            except Exception as exc:
                run.finish(run.partial(_cancelled_stats(engine, "error")), error=str(exc))
                raise
            stats = run.finish(result)
        finally:
            run.close()
            self.host.engine_stats_changed()
        assert run.user is not None and run.message is not None
        message, title = run.message, run.title
        if wants_title and run.saved and options.generate_title and not message.incomplete:
            title = await self._generate_title(
                engine, store, chat.id, title, q.content, message, run.cancel
            )
        return AnswerResult(
            chat_id=chat.id,
            request_id=run.request_id,
            title=title,
            user_message=run.user,
            message=message,
            text=message.content,
            thinking=message.thinking,
            incomplete=message.incomplete,
            stats=stats,
            sampling=sampling,
            preset_id=entry.id,
            truncation=truncation,
            notice=truncation["notice"] if truncation else None,
            saved=run.saved,
            storage_error=_problem(run.storage_error),
        )

    async def _generate_title(
        self,
        engine: Engine,
        store: ChatStore,
        chat_id: str,
        current: str,
        question: str,
        answer: Message,
        cancel: CancelToken,
    ) -> str:
        """Ask the model for a short title; keep ``current`` (the fallback) on failure."""
        title = await generate_title(engine, question, answer.content, cancel)
        if title is None:
            return current
        try:
            if store.get_chat_info(chat_id).title != current:
                return store.get_chat_info(chat_id).title  # renamed meanwhile: keep it
            store.rename_chat(chat_id, title)
        except (StorageError, NotFound, InvalidParams) as exc:
            log.warning("could not save the title of chat %s: %s", chat_id, exc)
            return current
        self.host.chat_changed(ChatChange(chat_id, store.folder_uri, "titled", title))
        return title

    # -- prompts ------------------------------------------------------------------------

    def preset_for(self, folder_uri: str, preset_id: str | None) -> PresetEntry:
        """The preset entry to use: ``preset_id``'s, else the folder's active preset."""
        manager = self.host.presets()
        if preset_id:
            scope = folder_uri if folder_uri != NO_WORKSPACE else None
            return manager.get(preset_id, scope)
        return manager.active(folder_uri).entry

    def sampling_for(
        self, preset: Preset | _SnapshotPreset, overrides: dict[str, Any] | None
    ) -> Sampling:
        """The preset's sampling with the request's overrides and the default seed."""
        sampling = dataclasses.replace(Sampling.of(preset.sampling), **(overrides or {}))
        seed = self.host.settings().seed
        if sampling.seed is None and seed >= 0:
            sampling.seed = seed
        return sampling

    async def render_prompt(
        self,
        *,
        chat_id: str | None = None,
        message_id: str | None = None,
        content: str | None = None,
        attachments: list[AttachmentRef] | None = None,
        options: AnswerOptions | None = None,
        folder_uri: str | None = None,
    ) -> PromptView:
        """The prompt a sent message was given (``message_id``), or the one a new message
        (``content``, else the chat's unanswered last message) would get."""
        opts = options or AnswerOptions()
        engine = await self.host.chat_engine()
        reserve: int | None = None
        snapshot: dict[str, Any] | None = None
        if message_id is not None:
            store = self.stores.store_of_message(message_id, folder_uri)
            target = store.get_message(message_id)
            chat = store.get_chat_info(target.chat_id)
            user = target
            if target.role == "assistant" and target.parent_id is not None:
                user = store.get_message(target.parent_id)
            if user.role != "user":
                raise InvalidParams(
                    f"Message {message_id!r} does not answer a user message.",
                    data={"messageId": message_id},
                )
            history = store.get_history(user.parent_id) if user.parent_id else []
            text, files = user.content, user.attachments
            if target.role == "assistant" and opts.preset_id is None and opts.sampling is None:
                # The prompt that was sent: the chat's preset snapshot, the same budget.
                snapshot = chat.preset
                stored = target.stats.truncation if target.stats is not None else None
                budget = stored.get("budgetTokens") if stored else None
                n_ctx = engine.info.context_length
                reserve = n_ctx - int(budget) if isinstance(budget, int) else 0
        else:
            if chat_id is None:
                raise InvalidParams("give chatId or messageId")
            store = self.stores.store_of_chat(chat_id, folder_uri)
            detail = store.get_chat(chat_id)
            chat = detail.chat
            if content is None and not attachments:
                leaf = detail.messages[-1] if detail.messages else None
                if leaf is None or leaf.role != "user":
                    raise InvalidParams(
                        "Give content (the message to send) or messageId (a sent message)."
                    )
                history = detail.messages[:-1]
                text, files = leaf.content, leaf.attachments
            else:
                history = detail.messages
                text = content or ""
                files = self.read_attachments(attachments or [], store.folder_uri)
        preset: Preset | _SnapshotPreset
        if snapshot is not None:
            preset = _SnapshotPreset(snapshot)
            preset_id = str(snapshot.get("id", ""))
        else:
            entry = self.preset_for(store.folder_uri, opts.preset_id)
            preset, preset_id = entry.preset, entry.id
        system = chat.system_prompt if chat.system_prompt is not None else preset.system_prompt
        sampling = self.sampling_for(preset, opts.sampling)
        plan, add_bos = await plan_prompt(
            engine,
            system,
            history,
            user_prompt_text(text, files),
            sampling.max_tokens,
            reserve=reserve,
        )
        truncation = plan.truncation.to_dict() if plan.truncation is not None else None
        return PromptView(
            chat_id=chat.id,
            text=plan.text,
            tokens=plan.tokens,
            add_bos=add_bos,
            messages=plan.messages,
            system_prompt=system,
            preset_id=preset_id,
            sampling=sampling,
            context_length=plan.context_length,
            budget_tokens=plan.budget_tokens,
            reserve_tokens=plan.reserve_tokens,
            truncation=truncation,
            notice=truncation["notice"] if truncation else None,
        )

    # -- attachments --------------------------------------------------------------------

    def read_attachments(self, refs: list[AttachmentRef], folder_uri: str) -> list[dict[str, Any]]:
        """Resolve attachments (open documents, else files) to their stored records,
        refusing secrets and links out of the workspace (see ``chat/attachments.py``)."""
        return read_attachments(
            refs,
            folder_uri,
            self.host.open_document,
            roots=[p for f in self.host.folder_uris() if (p := uri_to_path(f))],
            secret_globs=self.host.settings().completion.secret_globs,
        )

    # -- telling the user ---------------------------------------------------------------

    def _recovered(self, folder_uri: str, moved_to: Path) -> None:
        self.host.show_warning(
            f"Open LLM: the chat database of {_folder_label(folder_uri)} was damaged. It was "
            f"moved to {moved_to} and a new, empty one was started."
        )

    def warn_storage(self, store: ChatStore, exc: StorageError) -> None:
        """Tell the user once per folder that chats are not being saved."""
        log.error("chat storage failed for %s: %s", store.folder_uri, exc.message)
        if store.folder_uri in self._storage_warned:
            return
        self._storage_warned.add(store.folder_uri)
        self.host.show_error(
            f"Open LLM could not save the chat: {exc.message} The answer is still shown, "
            "but it is not kept."
        )


class _SnapshotPreset:
    """The parts of a stored preset snapshot a prompt needs (system prompt, sampling)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        try:
            preset = Preset.from_snapshot(snapshot)
        except ValueError:
            preset = Preset.model_validate(
                {"id": "snapshot", "name": "snapshot", "systemPrompt": ""}
            )
        self.system_prompt = preset.system_prompt
        self.sampling = preset.sampling


def _folder_label(uri: str) -> str:
    if uri == NO_WORKSPACE:
        return "chats outside any workspace"
    return uri_to_path(uri) or uri


def _attachment_label(attachments: list[dict[str, Any]]) -> str:
    for item in attachments:
        name = item.get("name") or item.get("path")
        if name:
            return f"About {name}"
    return DEFAULT_TITLE


def _problem(exc: StorageError | None) -> StorageProblem | None:
    if exc is None:
        return None
    details = {k: v for k, v in exc.data.items() if isinstance(v, str)}
    return StorageProblem(exc.kind, exc.message, details)


def _cancelled_stats(engine: Engine, reason: str = "cancelled") -> GenerationStats:
    stats = engine.last_stats
    out = GenerationStats(**vars(stats)) if stats is not None else GenerationStats()
    out.stop_reason = reason
    return out
