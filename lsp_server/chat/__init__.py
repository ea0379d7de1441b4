"""Chats as a domain service (no LSP).

- :mod:`~lsp_server.chat.service`: :class:`ChatService`, what the protocol layer calls.
- :mod:`~lsp_server.chat.stores`: the one registry of per-folder chat stores.
- :mod:`~lsp_server.chat.answer`: one answer being generated (start, deltas, finish).
- :mod:`~lsp_server.chat.records`: what the service takes and returns (dataclasses).
- prompt assembly with history truncation (``prompt``), titles, thinking-section
  splitting, attachments and the documents they come from, code-action prompts.

The protocol layer (``lsp_server/protocol/features/chat.py``) validates params, calls the
service and turns its records into JSON.
"""

from lsp_server.chat.attachments import (
    MAX_ATTACHMENT_CHARS,
    Attachment,
    format_attachment,
    language_for,
    select_range,
    user_prompt_text,
)
from lsp_server.chat.prompt import (
    PromptPlan,
    Truncation,
    answer_reserve,
    fit_history,
    group_turns,
    history_messages,
)
from lsp_server.chat.thinking import THINK_TAGS, ThinkingSplitter, starts_in_thinking
from lsp_server.chat.titles import clean_title, fallback_title, title_messages

__all__ = [
    "MAX_ATTACHMENT_CHARS",
    "THINK_TAGS",
    "Attachment",
    "PromptPlan",
    "ThinkingSplitter",
    "Truncation",
    "answer_reserve",
    "clean_title",
    "fallback_title",
    "fit_history",
    "format_attachment",
    "group_turns",
    "history_messages",
    "language_for",
    "select_range",
    "starts_in_thinking",
    "title_messages",
    "user_prompt_text",
]
