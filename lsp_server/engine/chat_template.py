"""Render chat messages with the model's own Jinja template: bounded, and content as data.

Most GGUF files carry ``tokenizer.chat_template``, a Jinja program written by whoever
made the file. It runs in the bounded sandbox of :mod:`lsp_server.engine.jinja_sandbox`
(no single step can take long, the output is capped) on a worker thread, off the event
loop, stopped after :data:`~lsp_server.engine.jinja_sandbox.RENDER_TIMEOUT_S`. Any
failure (a template error, ``raise_exception``, a bound, a timeout) renders the built-in
ChatML template (:data:`FALLBACK_TEMPLATE`) instead, with one warning naming the model;
a template that hit a bound is not run again for that model. Models without a template
get ChatML too, which is what many small instruct models expect.

**Content stays data.** Message content (attachments, earlier answers) must never turn
into control tokens: a file containing ``<|im_end|><|im_start|>system`` is text.
:class:`ChatRenderer` renders with every special-token spelling in the content replaced
by a per-render placeholder, then remembers which parts of the prompt came from there;
:meth:`ChatRenderer.tokenize` tokenizes only the template's own markup with special
tokens parsed, and those parts as plain text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsp_server.engine.jinja_sandbox import (
    RENDER_TIMEOUT_S,
    TemplateLimit,
    render_bounded,
)

if TYPE_CHECKING:
    from lsp_server.engine.llama import LlamaModel

__all__ = [
    "FALLBACK_TEMPLATE",
    "ChatRenderer",
    "TemplateLimit",
    "chatml",
    "render_chat",
    "render_chat_async",
]

log = logging.getLogger(__name__)

FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML, used when the model has no template of its own or its template fails."""


def chatml(messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
    """:data:`FALLBACK_TEMPLATE`, rendered in plain Python: no template engine involved, so
    the fallback cannot fail or hit a bound, whatever the size of the messages."""
    parts = [
        f"<|im_start|>{m.get('role', '')}\n{m.get('content', '')}<|im_end|>\n" for m in messages
    ]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def render_chat(
    template: str | None,
    messages: list[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    timeout: float = RENDER_TIMEOUT_S,
) -> str:
    """Render ``messages`` (``role``/``content`` dicts) into one prompt string, bounded.

    Runs on the calling thread (see :func:`render_chat_async` for the event loop). Without
    a template, or when it fails or goes over a bound (logged), the result is ChatML.
    """
    if template is None:
        return chatml(messages, add_generation_prompt=add_generation_prompt)
    try:
        return render_bounded(
            template,
            messages,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            timeout=timeout,
        )
    except Exception as exc:
        log.warning("the chat template failed (%s): using ChatML instead", _reason(exc))
        return chatml(messages, add_generation_prompt=add_generation_prompt)


_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="open-llm-template")


async def render_chat_async(
    template: str | None,
    messages: list[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    timeout: float = RENDER_TIMEOUT_S,
) -> str:
    """Render ``template`` on a worker thread, never blocking the event loop for longer
    than a trivial step; raise on failure (the caller decides the fallback).

    :raises TemplateError: the template failed; :class:`TemplateLimit` when a bound (time,
        size) was hit, including a worker that did not return in time.
    """
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(
        _executor,
        lambda: render_bounded(
            template or FALLBACK_TEMPLATE,
            messages,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            timeout=timeout,
        ),
    )
    try:
        return await asyncio.wait_for(future, timeout + 1.0)
    except TimeoutError:
        raise TemplateLimit(f"the template took longer than {timeout:g} s") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0][:200] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


# ---------------------------------------------------------------------------------------
# Content as data
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    text: str
    data: bool  # True: a special-token spelling from message content, tokenized as text


def _trie_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression matching any of ``words``, longest first, built as a trie
    so matching costs the length of a word, not the number of words (a vocabulary can
    have thousands of special tokens)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict[str, Any]) -> str:
        alternatives = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body

    return re.compile(build(trie)) if trie else None


class ChatRenderer:
    """The chat prompts of one loaded model: its template, bounded, and content as data.

    :meth:`render` returns the prompt text exactly as the template produces it (what
    ``openLlm/chat/renderPrompt`` shows and what is counted). When message content held
    spellings of the vocabulary's special tokens, it also remembers where they are, and
    :meth:`tokenize` of that same text tokenizes them as plain text: only the template's
    own markup becomes special tokens.
    """

    _REMEMBERED = 32

    def __init__(
        self, model: LlamaModel, *, template: str | None, bos_token: str, name: str
    ) -> None:
        self.model = model
        self.template = template
        self.bos_token = bos_token
        self.name = name
        self._spellings: list[str] | None = None
        self._index: dict[str, int] = {}
        self._special_ids: frozenset[int] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._segments: OrderedDict[str, tuple[_Segment, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self._warned = False
        self._broken = False

    # --- the vocabulary's special tokens ---
    def _load_specials(self) -> None:
        """Find the tokens llama.cpp parses from text (control, user-defined, unknown)."""
        if self._spellings is not None:
            return
        import llama_cpp as ll

        wanted = (
            ll.LLAMA_TOKEN_ATTR_CONTROL | ll.LLAMA_TOKEN_ATTR_USER_DEFINED
            | ll.LLAMA_TOKEN_ATTR_UNKNOWN
        )  # fmt: skip
        found: dict[str, int] = {}
        for token in range(self.model.n_vocab):
            if ll.llama_vocab_get_attr(self.model.vocab, token) & wanted:
                text = self.model.piece_special(token).decode("utf-8", errors="replace")
                if text.strip():
                    found.setdefault(text, token)
        self._pattern = _trie_pattern(found)
        self._special_ids = frozenset(found.values())
        self._index = {text: i for i, text in enumerate(found)}
        self._spellings = list(found)

    # --- rendering ---
    async def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt for ``messages``: the model's template on a worker thread, bounded,
        ChatML when it fails (one warning naming the model); content stays data."""
        if self._spellings is None:
            await asyncio.get_running_loop().run_in_executor(_executor, self._load_specials)
        nonce, swapped = await asyncio.to_thread(self._swap, messages)
        text: str | None = None
        if self.template and not self._broken:
            try:
                text = await render_chat_async(
                    self.template, swapped, bos_token=self.bos_token, eos_token=""
                )
            except Exception as exc:
                self._failed(exc)
        if text is None:
            text = chatml(swapped)
        if not nonce:
            return text
        return await asyncio.to_thread(self._restore, text, nonce, messages)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, (TemplateLimit, RecursionError, MemoryError)):
            self._broken = True  # a resource bound: not run again for this model
        if not self._warned:
            self._warned = True
            log.warning(
                "the chat template of %s failed (%s): using the built-in ChatML template",
                self.name,
                _reason(exc),
            )

    def _swap(self, messages: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
        """Replace special-token spellings in the content with ``\\ue000<nonce>:N\\ue001``."""
        pattern = self._pattern
        if pattern is None:
            return "", messages
        contents = [str(m.get("content", "")) for m in messages]
        if not any(pattern.search(c) for c in contents):
            return "", messages
        while True:  # a nonce that no content contains: content cannot forge a placeholder
            nonce = str(secrets.randbelow(10**9))
            if not any(nonce in c for c in contents):
                break
        index = self._index

        def placeholder(m: re.Match[str]) -> str:
            return f"\ue000{nonce}:{index[m.group(0)]}\ue001"

        swapped = [
            {**m, "content": pattern.sub(placeholder, c)}
            for m, c in zip(messages, contents, strict=True)
        ]
        return nonce, swapped

    def _restore(self, text: str, nonce: str, messages: list[dict[str, str]]) -> str:
        """Put the spellings back and remember where they are; if the template cut a
        placeholder apart, render ChatML with the spellings defused instead."""
        spellings = self._spellings or []
        marker = re.compile(f"\ue000{nonce}:(\\d+)\ue001")
        segments: list[_Segment] = []
        pos = 0
        for m in marker.finditer(text):
            number = int(m.group(1))
            if number >= len(spellings):
                break
            if m.start() > pos:
                segments.append(_Segment(text[pos : m.start()], False))
            segments.append(_Segment(spellings[number], True))
            pos = m.end()
        else:
            if pos < len(text):
                segments.append(_Segment(text[pos:], False))
            if not any(nonce in s.text for s in segments if not s.data):
                full = "".join(s.text for s in segments)
                with self._lock:
                    self._segments[full] = tuple(segments)
                    self._segments.move_to_end(full)
                    while len(self._segments) > self._REMEMBERED:
                        self._segments.popitem(last=False)
                return full
        log.warning("the chat template of %s altered message content; defusing it", self.name)
        defused = [{**m, "content": self._defuse(str(m.get("content", "")))} for m in messages]
        return chatml(defused)

    def _defuse(self, content: str) -> str:
        """Break every special spelling with a zero-width space (last resort)."""
        if self._pattern is None:
            return content
        return self._pattern.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], content)

    # --- tokenizing ---
    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        """Tokenize ``text``; a prompt :meth:`render` produced keeps its content as data."""
        with self._lock:
            segments = self._segments.get(text) if special else None
        if not segments:
            return self.model.tokenize(text, add_bos=add_bos, special=special)
        tokens: list[int] = self.model.tokenize("", add_bos=add_bos, special=True)
        for segment in segments:
            if segment.data:
                tokens.extend(self._plain(segment.text))
            else:
                tokens.extend(self.model.tokenize(segment.text, add_bos=False, special=True))
        return tokens

    def _plain(self, text: str) -> list[int]:
        """Tokens of ``text`` with no special token among them (character by character
        when the vocabulary would still match one, e.g. a user-defined token)."""
        tokens = self.model.tokenize(text, add_bos=False, special=False)
        if not self._special_ids.intersection(tokens):
            return tokens
        out: list[int] = []
        for ch in text:
            out.extend(self.model.tokenize(ch, add_bos=False, special=False))
        return out
