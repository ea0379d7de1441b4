"""Split a reasoning model's thinking section (``<think>…</think>``) from its answer.

Reasoning models write their thoughts first, between tags, then the answer. The
splitter works on streamed text: tags may arrive cut across deltas, so a possible
partial tag is held back until the next piece decides. A thinking section is only
recognized at the very start of the answer (after whitespace): a ``<think>`` later in
an answer (say, in code about XML) stays answer text.
"""

from __future__ import annotations

from enum import Enum

THINK_TAGS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
)
"""(open, close) tag pairs recognized around a thinking section."""


class _State(Enum):
    START = 0
    THINKING = 1
    ANSWER = 2


def starts_in_thinking(prompt: str, tags: tuple[tuple[str, str], ...] = THINK_TAGS) -> str | None:
    """Return the close tag to expect when the rendered prompt already opened a section.

    Some chat templates (e.g. Qwen3's with thinking on) end the prompt with ``<think>``:
    the model's output then starts inside the thinking section.
    """
    tail = prompt.rstrip()
    for open_tag, close_tag in tags:
        if tail.endswith(open_tag):
            return close_tag
    return None


class ThinkingSplitter:
    """Feed streamed text; get back the new answer text and the new thinking text.

    ``answer`` and ``thinking`` accumulate everything emitted so far. Leading whitespace
    of the answer is dropped (models put a blank line after ``</think>``).
    """

    def __init__(
        self,
        tags: tuple[tuple[str, str], ...] = THINK_TAGS,
        *,
        open_close_tag: str | None = None,
    ) -> None:
        """``open_close_tag``: start inside a thinking section ended by this tag."""
        self._tags = tags
        self._state = _State.START
        self._close = ""
        self._held = ""
        self.answer = ""
        self.thinking = ""
        if open_close_tag is not None:
            self._state = _State.THINKING
            self._close = open_close_tag

    @property
    def in_thinking(self) -> bool:
        """Whether the text being streamed now belongs to the thinking section."""
        return self._state is _State.THINKING

    def feed(self, text: str) -> tuple[str, str]:
        """Consume a piece of generated text; return (answer delta, thinking delta)."""
        answer: list[str] = []
        thinking: list[str] = []
        buffer = self._held + text
        self._held = ""
        while buffer:
            if self._state is _State.START:
                stripped = buffer.lstrip()
                if not stripped:
                    self._held = buffer
                    break
                opened = next((t for t in self._tags if stripped.startswith(t[0])), None)
                if opened is not None:
                    self._state = _State.THINKING
                    self._close = opened[1]
                    buffer = stripped[len(opened[0]) :]
                    continue
                if any(t[0].startswith(stripped) for t in self._tags):
                    self._held = buffer  # maybe the start of a tag: wait for more
                    break
                self._state = _State.ANSWER
                buffer = stripped
                continue
            if self._state is _State.THINKING:
                at = buffer.find(self._close)
                if at >= 0:
                    thinking.append(buffer[:at])
                    buffer = buffer[at + len(self._close) :]
                    self._state = _State.ANSWER
                    continue
                keep = _partial_suffix(buffer, self._close)
                thinking.append(buffer[: len(buffer) - keep])
                self._held = buffer[len(buffer) - keep :]
                break
            # ANSWER
            piece = buffer.lstrip() if not self.answer and not answer else buffer
            answer.append(piece)
            break
        return self._emit("".join(answer), "".join(thinking))

    def finish(self) -> tuple[str, str]:
        """Flush held-back text at the end of the generation."""
        held, self._held = self._held, ""
        if not held:
            return "", ""
        if self._state is _State.THINKING:
            return self._emit("", held)
        piece = held.lstrip() if not self.answer else held
        return self._emit(piece, "")

    def _emit(self, answer: str, thinking: str) -> tuple[str, str]:
        self.answer += answer
        self.thinking += thinking
        return answer, thinking


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
