"""Chat titles: a short title generated from the first exchange, or the first words."""

from __future__ import annotations

import asyncio
import logging
import re

from lsp_server.chat.thinking import ThinkingSplitter
from lsp_server.engine.base import CancelToken, Engine, GenerationRequest, Priority, SamplingParams
from lsp_server.storage.records import DEFAULT_TITLE

log = logging.getLogger(__name__)

MAX_TITLE_WORDS = 6
MAX_TITLE_CHARS = 60
TITLE_MAX_TOKENS = 12
"""Tokens the title generation may use (titles are a few words)."""

_PREFIX = re.compile(r"^\s*(?:title|chat title|topic)\s*[:\-–]\s*", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#>]+")
_QUOTES = "\"'“”‘’«»`"
_TRAILING = ".,;:!-–— "


def _shorten(text: str, max_words: int, max_chars: int) -> str:
    words = text.split()
    cut = len(words) > max_words
    title = " ".join(words[:max_words])
    if len(title) > max_chars:
        head = title[:max_chars]
        title = head.rsplit(" ", 1)[0] if " " in head else head
        cut = True
    title = title.rstrip(_TRAILING)
    return title + "…" if cut and title else title


def fallback_title(
    text: str, max_words: int = MAX_TITLE_WORDS, max_chars: int = MAX_TITLE_CHARS
) -> str:
    """The first words of the first line of ``text`` (the user's first message)."""
    for line in text.splitlines():
        clean = _MARKUP.sub("", line).strip().strip(_QUOTES).strip()
        if clean:
            title = _shorten(clean, max_words, max_chars)
            if title:
                return title
    return DEFAULT_TITLE


def title_messages(question: str, answer: str) -> list[dict[str, str]]:
    """Chat messages asking the model for a title of a conversation's first exchange."""
    q = " ".join(question.split())[:600]
    a = " ".join(answer.split())[:300]
    return [
        {
            "role": "system",
            "content": "You name conversations. Reply with a short title only: at most six "
            "words, no quotes, no punctuation at the end.",
        },
        {
            "role": "user",
            "content": f"Write a title for this conversation.\n\nQuestion: {q}\n\nAnswer: {a}",
        },
    ]


def clean_title(raw: str) -> str | None:
    """Tidy a generated title (first line, no quotes or "Title:"); None when unusable."""
    for line in raw.splitlines():
        text = _PREFIX.sub("", _MARKUP.sub("", line)).strip().strip(_QUOTES).strip()
        if not text:
            continue
        title = _shorten(text, MAX_TITLE_WORDS + 2, MAX_TITLE_CHARS)
        if sum(ch.isalnum() for ch in title) < 2:
            return None
        return title
    return None


async def generate_title(
    engine: Engine, question: str, answer: str, cancel: CancelToken
) -> str | None:
    """Ask the model for a short title of a first exchange; None when it gives none."""
    if not question.strip():
        return None
    try:
        result = await engine.chat(
            title_messages(question, answer),
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
        log.warning("no generated title: %s", exc)
        return None
    splitter = ThinkingSplitter()
    splitter.feed(result.text)
    splitter.finish()
    return clean_title(splitter.answer)
