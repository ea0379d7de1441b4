"""Plain-Python chat logic (no LSP): prompt assembly with history truncation, titles,
thinking-section splitting, attachments and code-action prompts.

The protocol layer (``lsp_server/protocol/features/chat.py``) wires these to the chat
store, the engine and the client.
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
