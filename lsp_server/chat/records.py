"""What the chat service takes and gives: plain dataclasses, snake_case, no wire names.

The protocol layer builds the inputs (:class:`AnswerOptions`, :class:`AttachmentRef`) from
the request params and turns the outputs into JSON with ``lsp_server/protocol/wire.py``.
Field metadata tells the wire where a record's shape differs from the JSON's:
``flatten`` merges a nested record into its parent, ``omit_none`` drops a None field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lsp_server.engine.base import GenerationStats, SamplingParams
from lsp_server.storage import Message


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """A document to attach (open in the editor, else read from disk) or a range of it."""

    uri: str
    range: dict[str, Any] | None = None
    """An LSP range ``{"start": {"line", "character"}, "end": {...}}``."""


@dataclass(frozen=True, slots=True)
class AnswerOptions:
    """What every request that generates an answer may choose."""

    preset_id: str | None = None
    """The preset to answer with; None: the folder's active preset."""
    sampling: dict[str, Any] | None = None
    """Overrides of the preset's sampling, by :class:`Sampling` field name (None: none
    given, so ``renderPrompt`` of a sent answer shows the prompt it was sent with)."""
    request_id: str | None = None
    """Tags the answer's deltas; ``openLlm/cancel`` may name it. Made up when None."""
    generate_title: bool = True
    """Ask the model for a title after the first answer (else keep the first words)."""


@dataclass(slots=True)
class Sampling:
    """The sampling an answer uses: the preset's values with the request's overrides."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float
    max_tokens: int
    stop: list[str]
    seed: int | None

    @classmethod
    def of(cls, preset_sampling: Any) -> Sampling:
        """Copy a preset's sampling (:class:`lsp_server.presets.Sampling`)."""
        return cls(
            temperature=preset_sampling.temperature,
            top_p=preset_sampling.top_p,
            top_k=preset_sampling.top_k,
            min_p=preset_sampling.min_p,
            repeat_penalty=preset_sampling.repeat_penalty,
            presence_penalty=preset_sampling.presence_penalty,
            frequency_penalty=preset_sampling.frequency_penalty,
            max_tokens=preset_sampling.max_tokens,
            stop=list(preset_sampling.stop),
            seed=preset_sampling.seed,
        )

    def engine_params(self) -> SamplingParams:
        """The sampler settings for the engine."""
        return SamplingParams(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
        )


@dataclass(slots=True)
class AnswerStats:
    """What an answer cost, which model gave it and what was cut to fit the context."""

    generation: GenerationStats = field(metadata={"flatten": True})
    model: str
    truncation: dict[str, Any] | None
    """:meth:`lsp_server.chat.prompt.Truncation.to_dict` (the stored form), or None."""
    error: str | None = field(default=None, metadata={"omit_none": True})
    """Why generation failed (only on the last delta of a failed answer)."""


@dataclass(slots=True)
class ChatDelta:
    """A piece of a streamed answer, or (``done``) its end with the final stats."""

    chat_id: str
    message_id: str
    request_id: str
    delta: str
    thinking: str
    done: bool
    incomplete: bool | None = field(default=None, metadata={"omit_none": True})
    """Set on the last delta only: whether the answer stopped early."""
    stats: AnswerStats | None = None


@dataclass(slots=True)
class ChatChange:
    """The server created or retitled a chat on its own."""

    chat_id: str
    workspace_folder: str
    reason: str
    """``"created"`` or ``"titled"``."""
    title: str


@dataclass(slots=True)
class StorageProblem:
    """Why an answer was not saved (the database could not be written)."""

    kind: str
    message: str
    details: dict[str, str] = field(default_factory=dict, metadata={"flatten": True})
    """The error's text data (path, reason, detail)."""


@dataclass(slots=True)
class AnswerResult:
    """An answered message: both messages, the text, how it was made, whether it was saved."""

    chat_id: str
    request_id: str
    title: str
    user_message: Message
    message: Message
    text: str
    thinking: str
    incomplete: bool
    stats: AnswerStats
    sampling: Sampling
    preset_id: str
    truncation: dict[str, Any] | None
    notice: str | None
    """One sentence for the user when older turns were left out."""
    saved: bool
    storage_error: StorageProblem | None


@dataclass(slots=True)
class PromptView:
    """The prompt a message was (or would be) sent with, and how it was sized."""

    chat_id: str
    text: str
    tokens: int
    add_bos: bool
    messages: list[dict[str, str]]
    system_prompt: str
    preset_id: str
    sampling: Sampling
    context_length: int
    budget_tokens: int
    reserve_tokens: int
    truncation: dict[str, Any] | None
    notice: str | None


@dataclass(slots=True)
class ChatExport:
    """A chat exported as JSON (``data`` and its text) or as Markdown (``text`` only)."""

    format: str
    text: str
    data: dict[str, Any] | None
