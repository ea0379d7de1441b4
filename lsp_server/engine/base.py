"""The engine interface: requests, results, stats and cancellation, free of llama.cpp.

An :class:`Engine` serves one role (chat or completion). The local implementation runs
llama.cpp in-process (:mod:`lsp_server.engine.local`); the remote one speaks to an
OpenAI-compatible server over HTTP (:mod:`lsp_server.engine.remote`). Features call
:meth:`Engine.chat` (messages), :meth:`Engine.generate` (a prompt) and
:meth:`Engine.infill` (code around a cursor) on either, and read the engine's
capabilities (:attr:`Engine.accepts_tokens`, :attr:`Engine.keeps_kv_cache`,
:attr:`Engine.in_process`, :meth:`Engine.needs_bos`) instead of checking its type.
Callers never touch llama.cpp types.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from lsp_server.core.errors import Cancelled, OpenLlmError

DeltaCallback = Callable[[str], None]
"""Receives each new piece of generated text, on the engine's thread."""


class Priority(IntEnum):
    """Queue order on the engine thread: lower runs first."""

    COMPLETION = 0
    CHAT = 10
    WARMUP = 20


@dataclass
class SamplingParams:
    """Sampler chain settings; ``temperature`` 0 means greedy."""

    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None


@dataclass
class GenerationRequest:
    """One generation: a text prompt (tokenized by the engine) or ready tokens."""

    prompt: str | None = None
    tokens: list[int] | None = None
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    time_budget_s: float | None = None
    priority: Priority = Priority.CHAT
    add_bos: bool = True
    parse_special: bool = True
    reuse_chunks: int = 0
    """Minimum run of cached tokens to shift into place instead of recomputing (0: prefix only)."""
    stop_check: Callable[[str], int | None] | None = None
    """Sees the whole text after each token; returns where to cut it to stop."""
    evaluate_only: bool = False
    """Only bring the KV cache to the prompt (warm-up); generate nothing."""


@dataclass
class InfillRequest:
    """A code completion at a cursor, as planned by :mod:`lsp_server.completion.planner`.

    The cursor splits the document: ``before`` (whole lines above the cursor's line),
    ``typed`` (the cursor's line up to the cursor) and ``suffix`` (the rest of the line
    and the lines below). ``extra`` holds ``(path, text)`` chunks of other files, oldest
    first. Every part is already fitted to the token budgets. Engines that accept tokens
    (:attr:`Engine.accepts_tokens`) run ``tokens``, the whole prompt in the model's own
    FIM layout; engines that tokenize on their side build their request from the text.
    """

    before: str
    typed: str
    suffix: str
    path: str = ""
    language: str = ""
    extra: list[tuple[str, str]] = field(default_factory=list)
    project: str = "project"
    max_tokens: int = 48
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0))
    stop_check: Callable[[str], int | None] | None = None
    """Sees the whole text after each piece; returns where to cut it to stop."""
    timeout_s: float | None = None
    """Give up (remote engines) when no text arrived within this long (None: the engine's
    configured completion timeout)."""
    priority: Priority = Priority.COMPLETION
    tokens: list[int] | None = None
    """The whole prompt as token ids (engines that accept tokens require it)."""
    prompt: str = ""
    """The same completion as one prefix-only text prompt (other files and the path as
    comments, then the code before the cursor), for endpoints that take no suffix."""
    reuse_chunks: int = 0
    """Minimum run of cached tokens to shift into place (engines that keep a KV cache)."""


@dataclass
class GenerationStats:
    """What one request cost: token counts and milliseconds per phase."""

    prompt_tokens: int = 0
    reused_tokens: int = 0
    evaluated_tokens: int = 0
    prompt_slices: int = 0
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    first_token_ms: float = 0.0
    generation_ms: float = 0.0
    tokens_per_s: float = 0.0
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the stats with camelCase keys for the wire."""
        return {_camel(k): v for k, v in asdict(self).items()}


@dataclass
class GenerationResult:
    """The full text of a finished (or stopped) generation and its stats."""

    text: str
    stats: GenerationStats


class CancelToken:
    """A thread-safe flag checked by the engine between prompt slices and tokens.

    Engines that wait on I/O rather than check a flag (the remote engine) register a
    callback with :meth:`add_callback` to be told at once.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the generation to stop at its next check (and run the callbacks once)."""
        with self._lock:
            self.reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on the cancelling thread) when cancelled; return a remover."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)

                def remove() -> None:
                    with self._lock, contextlib.suppress(ValueError):
                        self._callbacks.remove(callback)

                return remove
        callback()
        return lambda: None

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the token was cancelled."""
        if self._event.is_set():
            raise Cancelled(f"request {self.reason}")


@dataclass
class ModelInfo:
    """What a loaded model is, for status displays."""

    name: str
    path: str
    architecture: str
    parameters: int
    quantization: str
    size_bytes: int
    context_length: int
    trained_context_length: int
    license: str
    has_chat_template: bool
    fim: dict[str, int] = field(default_factory=dict)
    threads: int = 0
    gpu_layers: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the info with camelCase keys for the wire."""
        return {_camel(k): v for k, v in asdict(self).items()}


class Vocabulary(Protocol):
    """Token-level access to a model loaded in this process (engines that accept tokens)."""

    @property
    def fim(self) -> dict[str, int]:
        """The FIM special tokens the vocabulary declares (``pre``, ``suf``, ``mid``, ...)."""
        ...

    def tokenize_code(self, text: str) -> list[int]:
        """Tokenize source text: no BOS, and control-token spellings stay plain text."""
        ...

    def code_bos(self) -> int | None:
        """The BOS token to start a completion prompt with, unless the model adds none."""
        ...

    def render(self, tokens: list[int]) -> str:
        """The text of ``tokens`` with control tokens spelled out (to show a prompt)."""
        ...


class Engine(Protocol):
    """A model serving one role: generations, chat and code completion.

    Implementations own their threads (in-process) or connections (servers). What differs
    between them is told by capabilities, never by their type:

    - :attr:`accepts_tokens`: prompts may be token ids of :attr:`vocabulary`, so completion
      lays its prompt out in tokens; otherwise it sends text and the engine tokenizes;
    - :attr:`keeps_kv_cache`: the evaluated prompt stays cached between requests, so
      evaluating a prompt ahead of time (``evaluate_only``, the completion warm-up) pays off;
    - :attr:`in_process`: the model runs in this process, so prompts never leave it;
    - :meth:`needs_bos`: whether tokenizing a rendered chat prompt must add BOS.
    """

    @property
    def backend(self) -> str:
        """Where the model runs, for status displays: ``local`` or ``remote``."""
        ...

    @property
    def accepts_tokens(self) -> bool:
        """Whether prompts may be token ids (:attr:`vocabulary` is then set)."""
        ...

    @property
    def keeps_kv_cache(self) -> bool:
        """Whether a prompt evaluated ahead of time makes the next request cheaper."""
        ...

    @property
    def in_process(self) -> bool:
        """Whether the model runs in this process (prompts never leave the machine)."""
        ...

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The model's vocabulary, for engines that accept tokens; None otherwise."""
        ...

    @property
    def info(self) -> ModelInfo:
        """Describe the loaded model."""
        ...

    @property
    def last_stats(self) -> GenerationStats | None:
        """Stats of the most recent finished generation."""
        ...

    @property
    def health_error(self) -> OpenLlmError | None:
        """Why the engine cannot serve right now (a server that is down); None when fine."""
        ...

    async def generate(
        self, request: GenerationRequest, on_delta: DeltaCallback | None, cancel: CancelToken
    ) -> GenerationResult:
        """Run one generation; raise :class:`Cancelled` when ``cancel`` fires."""
        ...

    async def tokenize(
        self, text: str, *, add_bos: bool = False, special: bool = True
    ) -> list[int]:
        """Tokenize ``text`` with the model's vocabulary."""
        ...

    def needs_bos(self, prompt: str) -> bool:
        """Whether tokenizing a rendered chat ``prompt`` must add BOS (for token counts)."""
        ...

    async def render_chat(self, messages: list[dict[str, str]]) -> str:
        """Render chat messages through the model's template, ready for generation."""
        ...

    async def chat(
        self,
        messages: list[dict[str, str]],
        request: GenerationRequest,
        on_delta: DeltaCallback | None,
        cancel: CancelToken,
    ) -> GenerationResult:
        """Answer chat ``messages`` (``request`` gives sampling, limits and stops; its
        ``prompt``/``tokens`` are ignored); raise :class:`Cancelled` when cancelled."""
        ...

    async def infill(self, request: InfillRequest, cancel: CancelToken) -> GenerationResult:
        """Complete code at a cursor: ``request.tokens`` when the engine accepts tokens,
        else the text parts; raise :class:`Cancelled` when cancelled."""
        ...

    async def completion_api(self) -> str:
        """How :meth:`infill` is served: ``tokens`` (the planned token prompt), or the
        endpoint a server offers (``infill``, ``suffix`` or ``prefix``)."""
        ...

    async def clear_cache(self) -> None:
        """Forget the evaluated prompt, so the next request is served cold."""
        ...

    def close(self) -> None:
        """Free the model (or connections) and stop the engine's work."""
        ...


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)
