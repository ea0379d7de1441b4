"""Chat export and import: a JSON file format that round-trips, and Markdown to read.

The JSON export is a versioned file format (``"format": "open-llm-lsp.chat"``,
``"version": 1``). Its keys are spelled in camelCase because that is how version 1 files
are written; :data:`_STATS_KEYS` and the dicts below *are* that format's definition (not a
conversion for the client, which the protocol layer does).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from typing import Any

from lsp_server.core.errors import InvalidParams
from lsp_server.storage import rows
from lsp_server.storage.records import (
    Chat,
    ChatDetail,
    MessageStats,
    check_content,
    check_name,
    check_role,
    check_title,
    new_id,
    now_ms,
)

log = logging.getLogger(__name__)

EXPORT_FORMAT = "open-llm-lsp.chat"
EXPORT_VERSION = 1

_STATS_KEYS: tuple[tuple[str, str], ...] = (
    ("prompt_tokens", "promptTokens"),
    ("completion_tokens", "completionTokens"),
    ("ttft_ms", "ttftMs"),
    ("tokens_per_s", "tokensPerS"),
    ("stop_reason", "stopReason"),
    ("model", "model"),
    ("truncation", "truncation"),
)
"""MessageStats field → key in a version 1 export."""


def _stats_json(stats: MessageStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {key: getattr(stats, name) for name, key in _STATS_KEYS}


def export_json(c: sqlite3.Connection, chat_id: str, workspace: str) -> dict[str, Any]:
    """Export a chat with its whole message tree as a JSON-ready dict.

    Shape: ``{"format": "open-llm-lsp.chat", "version": 1, "chat": {...},
    "messages": [...]}``; messages in creation order (parents before children). The
    folder is exported by name; trash state is not exported.
    """
    chat = rows.chat(c, chat_id, workspace)
    folder_name: str | None = None
    if chat.folder_id is not None:
        folder_name = rows.folder(c, chat.folder_id, workspace).name
    found = c.execute(
        f"SELECT {rows.MSG_COLS} FROM messages WHERE chat_id = ? ORDER BY seq", (chat_id,)
    ).fetchall()
    messages = []
    for row in found:
        m = rows.message_from_row(row)
        messages.append(
            {
                "id": m.id,
                "parentId": m.parent_id,
                "role": m.role,
                "content": m.content,
                "thinking": m.thinking,
                "attachments": m.attachments,
                "createdAt": m.created_at,
                "incomplete": m.incomplete,
                "stats": _stats_json(m.stats),
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "chat": {
            "id": chat.id,
            "title": chat.title,
            "folder": folder_name,
            "pinned": chat.pinned,
            "createdAt": chat.created_at,
            "updatedAt": chat.updated_at,
            "preset": chat.preset,
            "systemPrompt": chat.system_prompt,
            "model": chat.model,
            "activeLeafId": chat.active_leaf_id,
        },
        "messages": messages,
    }


def markdown(detail: ChatDetail) -> str:
    """A chat's active branch as Markdown (thinking in a collapsed <details>)."""
    chat = detail.chat
    created = datetime.fromtimestamp(chat.created_at / 1000, tz=UTC)
    lines = [f"# {chat.title}", ""]
    meta = [f"Created {created.strftime('%Y-%m-%d %H:%M UTC')}"]
    if chat.model:
        meta.append(f"model `{chat.model}`")
    lines += ["_" + " · ".join(meta) + "_", ""]
    if chat.system_prompt:
        lines += ["**System prompt:**", "", chat.system_prompt, ""]
    names = {"user": "User", "assistant": "Assistant", "system": "System"}
    for m in detail.messages:
        heading = f"## {names.get(m.role, m.role)}"
        if m.sibling_count > 1:
            heading += f" ({m.sibling_index + 1}/{m.sibling_count})"
        lines += [heading, ""]
        if m.thinking:
            lines += ["<details><summary>Thinking</summary>", "", m.thinking, "", "</details>", ""]
        lines += [m.content, ""]
        for item in m.attachments:
            label = item.get("name") or item.get("path") or item.get("uri") or "attachment"
            lines.append(f"- Attachment: {label}")
        if m.attachments:
            lines.append("")
        if m.incomplete:
            lines += ["_(incomplete)_", ""]
    return "\n".join(lines).rstrip() + "\n"


def import_json(
    c: sqlite3.Connection,
    chat_data: dict[str, Any],
    messages: list[dict[str, Any]],
    workspace: str,
) -> Chat:
    """Import a chat exported by :func:`export_json` (checked by :func:`validate_export`).

    Ids are kept, unless the chat id or any message id already exists here: then the
    chat and all its messages get new ids (consistently). Everything else round-trips
    exactly. The folder is matched by name (created if missing).
    """
    ids = [str(m["id"]) for m in messages]
    collision = c.execute(
        "SELECT 1 FROM chats WHERE id = ?", (chat_data["id"],)
    ).fetchone() is not None or any(
        c.execute(
            f"SELECT 1 FROM messages WHERE id IN ({','.join('?' for _ in chunk)}) LIMIT 1",
            tuple(chunk),
        ).fetchone()
        is not None
        for chunk in (ids[i : i + rows.IN_CHUNK] for i in range(0, len(ids), rows.IN_CHUNK))
    )
    mapping = {mid: (new_id() if collision else mid) for mid in ids}
    if collision:
        log.info("imported chat %s collides with existing ids: new ids given", chat_data["id"])
    chat_id = new_id() if collision else str(chat_data["id"])
    folder_id: str | None = None
    if chat_data.get("folder"):
        name = check_name(str(chat_data["folder"]))
        row = c.execute("SELECT id FROM folders WHERE name = ? COLLATE NOCASE", (name,)).fetchone()
        if row is not None:
            folder_id = str(row[0])
        else:
            folder_id = new_id()
            c.execute(
                "INSERT INTO folders (id, name, created) VALUES (?, ?, ?)",
                (folder_id, name, now_ms()),
            )
    leaf = chat_data.get("activeLeafId")
    values = rows.chat_values(
        chat_id,
        str(chat_data["title"]),
        folder_id=folder_id,
        pinned=bool(chat_data.get("pinned")),
        created=int(chat_data["createdAt"]),
        updated=int(chat_data["updatedAt"]),
        preset=chat_data.get("preset"),
        system_prompt=chat_data.get("systemPrompt"),
        model=chat_data.get("model"),
        active_leaf_id=mapping.get(leaf) if isinstance(leaf, str) else None,
    )
    c.execute(rows.INSERT_CHAT, values)
    params = []
    for m in messages:
        stats = m.get("stats") or {}
        parent = m.get("parentId")
        params.append(
            rows.message_values(
                mapping[str(m["id"])],
                chat_id,
                mapping[parent] if parent else None,
                m["role"],
                m["content"],
                thinking=m.get("thinking") or "",
                attachments=m.get("attachments"),
                created=int(m["createdAt"]),
                stats=MessageStats(**{name: stats.get(key) for name, key in _STATS_KEYS}),
                incomplete=bool(m.get("incomplete")),
            )
        )
    c.executemany(rows.INSERT_MSG, params)
    return rows.chat(c, chat_id, workspace)


def validate_export(data: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check an export's shape; InvalidParams naming the first problem."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise InvalidParams(f"Not a chat export (expected format {EXPORT_FORMAT!r}).")
    if data.get("version") != EXPORT_VERSION:
        raise InvalidParams(f"Unsupported chat export version {data.get('version')!r}.")
    chat = data.get("chat")
    messages = data.get("messages")
    if not isinstance(chat, dict) or not isinstance(messages, list):
        raise InvalidParams("A chat export needs a 'chat' object and a 'messages' list.")
    if not isinstance(chat.get("id"), str) or not chat["id"]:
        raise InvalidParams("chat.id must be a non-empty string.")
    check_title(chat.get("title"))  # type: ignore[arg-type]
    for key in ("createdAt", "updatedAt"):
        if not isinstance(chat.get(key), int) or isinstance(chat.get(key), bool):
            raise InvalidParams(f"chat.{key} must be an integer (ms since epoch).")
    if chat.get("preset") is not None and not isinstance(chat.get("preset"), dict):
        raise InvalidParams("chat.preset must be an object or null.")
    seen: set[str] = set()
    for index, m in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(m, dict):
            raise InvalidParams(f"{where} must be an object.")
        mid = m.get("id")
        if not isinstance(mid, str) or not mid or mid in seen:
            raise InvalidParams(f"{where}.id must be a unique non-empty string.")
        parent = m.get("parentId")
        if parent is not None and parent not in seen:
            raise InvalidParams(f"{where}.parentId must name an earlier message.")
        role = m.get("role")
        if not isinstance(role, str):
            raise InvalidParams(f"{where}.role must be a string.")
        check_role(role)
        attachments = m.get("attachments") or []
        if not isinstance(attachments, list):
            raise InvalidParams(f"{where}.attachments must be a list.")
        check_content(role, m.get("content"), attachments)  # type: ignore[arg-type]
        if not isinstance(m.get("createdAt"), int):
            raise InvalidParams(f"{where}.createdAt must be an integer.")
        if m.get("stats") is not None and not isinstance(m.get("stats"), dict):
            raise InvalidParams(f"{where}.stats must be an object or null.")
        seen.add(mid)
    leaf = chat.get("activeLeafId")
    if leaf is not None and leaf not in seen:
        raise InvalidParams("chat.activeLeafId must name one of the messages.")
    return chat, messages
