"""One answer being generated, as an object: :meth:`AnswerRun.start`, ``on_delta``, ``finish``.

The run exists from the moment the request arrives (its request id and cancel token are
known while the model still loads). :meth:`~AnswerRun.start` saves the user message and
an empty, incomplete answer; :meth:`~AnswerRun.on_delta` sends each piece to the client
and writes the text to the database at most :data:`FLUSH_INTERVAL_S` after it changed;
:meth:`~AnswerRun.finish` settles the text, writes the final state and sends the last
delta. So a cancel, a crash or a kill keeps the partial answer, marked incomplete.

A storage failure never stops an answer: it is reported (once per folder, by the service)
and the run carries on in memory with ``saved`` False.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from lsp_server.chat.records import AnswerStats, ChatDelta
from lsp_server.chat.thinking import ThinkingSplitter, starts_in_thinking
from lsp_server.core.errors import StorageError
from lsp_server.engine.base import CancelToken, GenerationResult, GenerationStats
from lsp_server.storage import Chat, ChatStore, Message, MessageStats
from lsp_server.storage.records import new_id, now_ms

FLUSH_INTERVAL_S = 0.5
"""A streaming answer is written to the database at most this long after a change."""


class Flusher:
    """Call ``write`` at most ``interval`` seconds after :meth:`changed` (on this loop)."""

    def __init__(self, write: Callable[[], None], interval: float = FLUSH_INTERVAL_S) -> None:
        self._write = write
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0
        self.closed = False

    def changed(self) -> None:
        """Schedule a write (none when one is already due)."""
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
        """Cancel the pending write; later changes write nothing."""
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class AnswerRun:
    """One answer of one chat: saved as it streams, sent as deltas, settled once."""

    def __init__(
        self,
        chat_id: str,
        request_id: str,
        *,
        emit: Callable[[ChatDelta], None],
        storage_failed: Callable[[ChatStore, StorageError], None],
    ) -> None:
        """``emit`` sends a delta to the client; ``storage_failed`` reports a write error."""
        self.chat_id = chat_id
        self.request_id = request_id
        self.cancel = CancelToken()
        self.raw: list[str] = []
        """The streamed text as the engine gave it (thinking included)."""
        self._emit = emit
        self._storage_failed = storage_failed
        self.saved = True
        self.storage_error: StorageError | None = None
        self.title = ""
        self.model = ""
        self.truncation: dict[str, Any] | None = None
        self._store: ChatStore | None = None
        self._splitter = ThinkingSplitter()
        self._flusher: Flusher | None = None
        self.user: Message | None = None
        self.message: Message | None = None

    def start(
        self,
        *,
        store: ChatStore,
        chat: Chat,
        user: Message | None,
        save_user: Callable[[], Message] | None,
        history: list[Message],
        content: str,
        attachments: list[dict[str, Any]],
        new_title: str | None,
        preset_snapshot: dict[str, Any],
        model: str,
        truncation: dict[str, Any] | None,
        prompt: str,
    ) -> None:
        """Save the question (``save_user``, unless ``user`` is asked again), the chat's
        ``new_title``, preset and model, and an empty incomplete answer to stream into."""
        self._store = store
        self.title = chat.title
        self.model = model
        self.truncation = truncation
        try:
            if user is None:
                assert save_user is not None
                user = save_user()
            if new_title is not None:
                self.title = new_title
                store.rename_chat(chat.id, new_title)
            store.update_chat(chat.id, preset=preset_snapshot, model=model)
            message = store.append_message(
                chat.id,
                user.id,
                "assistant",
                "",
                incomplete=True,
                stats=MessageStats(model=model, truncation=truncation),
            )
        except StorageError as exc:
            self._failed(exc)
            if user is None:
                leaf = history[-1].id if history else None
                user = memory_message(chat.id, leaf, "user", content, attachments)
            message = memory_message(chat.id, user.id, "assistant", "", [])
            message.incomplete = True
        self.user, self.message = user, message
        self._splitter = ThinkingSplitter(open_close_tag=starts_in_thinking(prompt))
        self._flusher = Flusher(self._write_partial)

    def on_delta(self, text: str) -> None:
        """Take a piece of generated text: send it, and save the answer soon."""
        self.raw.append(text)
        self._send(*self._splitter.feed(text))
        if self._flusher is not None:
            self._flusher.changed()

    def partial(self, stats: GenerationStats) -> GenerationResult:
        """What was streamed so far, as a result with ``stats``."""
        return GenerationResult("".join(self.raw), stats)

    def finish(self, result: GenerationResult, error: str | None = None) -> AnswerStats:
        """Settle the text, save the final state and send the last delta (no awaits)."""
        message = self._started()
        self.close()
        seen = "".join(self.raw)
        if result.text.startswith(seen):
            self._send(*self._splitter.feed(result.text[len(seen) :]))
        self._send(*self._splitter.finish())
        stats = result.stats
        incomplete = stats.stop_reason == "cancelled" or error is not None
        answer_stats = AnswerStats(stats, self.model, self.truncation, error)
        message.content = self._splitter.answer
        message.thinking = self._splitter.thinking.strip()
        message.incomplete = incomplete
        message.stats = MessageStats(
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.generated_tokens,
            ttft_ms=round(stats.first_token_ms, 2),
            tokens_per_s=round(stats.tokens_per_s, 2),
            stop_reason=stats.stop_reason or None,
            model=self.model,
            truncation=self.truncation,
        )
        if self.saved and self._store is not None:
            try:
                self._store.update_message(
                    message.id,
                    content=message.content,
                    thinking=message.thinking,
                    stats=message.stats,
                    incomplete=incomplete,
                )
            except StorageError as exc:
                self._failed(exc)
        delta = ChatDelta(
            self.chat_id, message.id, self.request_id, "", "", True, incomplete, answer_stats
        )
        self._emit(delta)
        return answer_stats

    def close(self) -> None:
        """Stop saving partial text (idempotent)."""
        if self._flusher is not None:
            self._flusher.close()

    # -- internals ----------------------------------------------------------------------

    def _started(self) -> Message:
        if self.message is None:  # pragma: no cover - programming error
            raise RuntimeError("AnswerRun.start() was not called")
        return self.message

    def _send(self, answer: str, thinking: str) -> None:
        if answer or thinking:
            message = self._started()
            self._emit(
                ChatDelta(self.chat_id, message.id, self.request_id, answer, thinking, False)
            )

    def _write_partial(self) -> None:
        if not self.saved or self._store is None:
            return
        try:
            self._store.update_message(
                self._started().id,
                content=self._splitter.answer,
                thinking=self._splitter.thinking.strip(),
            )
        except StorageError as exc:
            self._failed(exc)

    def _failed(self, exc: StorageError) -> None:
        self.saved = False
        self.storage_error = exc
        if self._store is not None:
            self._storage_failed(self._store, exc)


def memory_message(
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
