"""The chats of one workspace folder in SQLite: CRUD, the message tree, trash and folders.

:class:`ChatStore` is the one entry point; search (:mod:`~lsp_server.storage.search`) and
export/import (:mod:`~lsp_server.storage.transfer`) run inside its transactions. Records
are the plain dataclasses of :mod:`~lsp_server.storage.records`.

This module is a little over 600 lines because it is one cohesive thing: the store's whole
public API, each method one transaction over helpers in :mod:`~lsp_server.storage.rows`.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from lsp_server.core.errors import Conflict, InvalidParams, NotFound
from lsp_server.core.paths import normalize_folder_uri
from lsp_server.storage import rows, search, transfer
from lsp_server.storage.db import DEFAULT_BUSY_TIMEOUT_S, Database
from lsp_server.storage.paths import chat_db_path
from lsp_server.storage.records import (
    DEFAULT_TITLE,
    NO_FOLDER,
    UNSET,
    ActiveLeaf,
    Chat,
    ChatDetail,
    ChatPage,
    Folder,
    Message,
    MessageStats,
    SearchHit,
    SortKey,
    Unset,
    check_content,
    check_name,
    check_role,
    check_title,
    new_id,
    now_ms,
)

log = logging.getLogger(__name__)

_SORT_COLUMNS: dict[str, str] = {
    "updated": "c.updated",
    "created": "c.created",
    "title": "c.title COLLATE NOCASE",
}


class ChatStore:
    """Chats of one workspace folder, in ``data_dir()/chats/<folder_key>.sqlite3``.

    All methods are synchronous and serialized on one connection (safe to call from several
    threads). Several processes may write the same file: writes queue on SQLite's lock.
    """

    def __init__(
        self,
        folder_uri: str,
        *,
        path: Path | None = None,
        use_fts: bool | None = None,
        read_only: bool = False,
        integrity_check: bool = False,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        """Open (create, migrate or recover) the database of ``folder_uri``.

        ``path`` overrides the location (tests); ``use_fts=False`` forces the LIKE search
        fallback, None picks FTS5 when SQLite has it.
        """
        self.folder_uri = normalize_folder_uri(folder_uri)
        self.path = path if path is not None else chat_db_path(self.folder_uri)
        self._db = Database(
            self.path,
            use_fts=use_fts,
            read_only=read_only,
            integrity_check=integrity_check,
            busy_timeout_s=busy_timeout_s,
        )
        try:
            if not read_only:
                self._db.write(self._claim_folder)
            else:
                self._db.read(self._check_folder)
        except BaseException:
            self._db.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def recovered_from(self) -> Path | None:
        """Where a corrupt database was moved at open (None when nothing happened)."""
        return self._db.recovered_from

    @property
    def fts_enabled(self) -> bool:
        """Whether search uses FTS5 (False: the LIKE fallback)."""
        return self._db.fts

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _claim_folder(self, c: sqlite3.Connection) -> None:
        """Record the workspace folder URI in the database, or refuse another folder's file."""
        self._check_folder(c)
        c.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('folder_uri', ?)", (self.folder_uri,)
        )

    def _check_folder(self, c: sqlite3.Connection) -> None:
        row = c.execute("SELECT value FROM meta WHERE key = 'folder_uri'").fetchone()
        if row is not None and str(row["value"]) != self.folder_uri:
            raise Conflict(
                f"The chat database {self.path} belongs to {row['value']}, not {self.folder_uri}.",
                data={"path": str(self.path), "folderUri": str(row["value"])},
            )

    # -- internal ----------------------------------------------------------------------

    def _touch(self, c: sqlite3.Connection, chat_id: str, leaf: str | None = None) -> None:
        if leaf is None:
            c.execute("UPDATE chats SET updated = ? WHERE id = ?", (now_ms(), chat_id))
        else:
            c.execute(
                "UPDATE chats SET updated = ?, active_leaf_id = ? WHERE id = ?",
                (now_ms(), leaf, chat_id),
            )

    # -- chats -------------------------------------------------------------------------

    def create_chat(
        self,
        title: str | None = None,
        *,
        folder_id: str | None = None,
        preset: dict[str, Any] | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
    ) -> Chat:
        """Create an empty chat (title defaults to "New chat")."""
        clean = check_title(title) if title is not None else DEFAULT_TITLE
        chat_id = new_id()

        def op(c: sqlite3.Connection) -> Chat:
            if folder_id is not None:
                rows.require_folder(c, folder_id)
            stamp = now_ms()
            values = rows.chat_values(
                chat_id,
                clean,
                folder_id=folder_id,
                created=stamp,
                updated=stamp,
                preset=preset,
                system_prompt=system_prompt,
                model=model,
            )
            c.execute(rows.INSERT_CHAT, values)
            return rows.chat(c, chat_id, self.folder_uri)

        return self._db.write(op)

    def get_chat(self, chat_id: str) -> ChatDetail:
        """Return a chat with its active branch (root→leaf), each message's sibling info."""
        return self._db.read(lambda c: rows.detail(c, chat_id, self.folder_uri))

    def get_chat_info(self, chat_id: str) -> Chat:
        """Return a chat's metadata without messages."""
        return self._db.read(lambda c: rows.chat(c, chat_id, self.folder_uri))

    def list_chats(
        self,
        *,
        sort: SortKey = "updated",
        descending: bool | None = None,
        folder_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ChatPage:
        """List chats not in the trash: pinned first, then by ``sort``; one page plus total.

        ``descending`` defaults to True for dates and False for titles. ``folder_id``: None
        lists every chat, :data:`NO_FOLDER` ("") those in no folder, an id that folder's.
        """
        if sort not in _SORT_COLUMNS:
            raise InvalidParams(f"Unknown sort {sort!r}: expected updated, created or title.")
        if offset < 0 or limit < 1:
            raise InvalidParams("offset must be >= 0 and limit >= 1.")
        desc = (sort != "title") if descending is None else descending
        direction = "DESC" if desc else "ASC"
        where = "c.deleted_at IS NULL"
        args: list[Any] = []
        if folder_id == NO_FOLDER:
            where += " AND c.folder_id IS NULL"
        elif folder_id is not None:
            where += " AND c.folder_id = ?"
            args.append(folder_id)
        order = f"c.pinned DESC, {_SORT_COLUMNS[sort]} {direction}, c.seq {direction}"

        def op(c: sqlite3.Connection) -> ChatPage:
            if folder_id:
                rows.require_folder(c, folder_id)
            total = int(
                c.execute(f"SELECT count(*) FROM chats c WHERE {where}", args).fetchone()[0]
            )
            found = c.execute(
                f"SELECT {rows.CHAT_COLS} FROM chats c WHERE {where} "
                f"ORDER BY {order} LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            items = [rows.chat_from_row(r, self.folder_uri) for r in found]
            return ChatPage(items=items, total=total, offset=offset, limit=limit)

        return self._db.read(op)

    def rename_chat(self, chat_id: str, title: str) -> Chat:
        """Rename a chat."""
        clean = check_title(title)
        return self._update_chat_columns(chat_id, {"title": clean})

    def update_chat(
        self,
        chat_id: str,
        *,
        preset: dict[str, Any] | Unset | None = UNSET,
        system_prompt: str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
    ) -> Chat:
        """Set a chat's preset snapshot, system prompt override or model (None clears)."""
        columns: dict[str, Any] = {}
        if not isinstance(preset, Unset):
            if preset is not None and not isinstance(preset, dict):
                raise InvalidParams("preset must be an object or null.")
            columns["preset_json"] = rows.dumps(preset)
        if not isinstance(system_prompt, Unset):
            columns["system_prompt"] = system_prompt
        if not isinstance(model, Unset):
            columns["model"] = model
        return self._update_chat_columns(chat_id, columns)

    def set_pinned(self, chat_id: str, pinned: bool) -> Chat:
        """Pin (True) or unpin (False) a chat; pinned chats list first."""
        return self._update_chat_columns(chat_id, {"pinned": 1 if pinned else 0})

    def move_chat(self, chat_id: str, folder_id: str | None) -> Chat:
        """Move a chat into a folder (None: out of any folder)."""
        return self._update_chat_columns(chat_id, {"folder_id": folder_id}, check_folder=folder_id)

    def _update_chat_columns(
        self, chat_id: str, columns: dict[str, Any], check_folder: str | None = None
    ) -> Chat:
        """UPDATE whitelisted chat columns (names come from code, values are parameters)."""
        allowed = {"title", "preset_json", "system_prompt", "model", "pinned", "folder_id"}
        if not set(columns) <= allowed:  # pragma: no cover - programming error
            raise ValueError(f"unexpected columns {set(columns) - allowed}")

        def op(c: sqlite3.Connection) -> Chat:
            rows.require_chat(c, chat_id)
            if check_folder is not None:
                rows.require_folder(c, check_folder)
            if columns:
                assignments = ", ".join(f"{name} = ?" for name in columns)
                c.execute(
                    f"UPDATE chats SET {assignments} WHERE id = ?", [*columns.values(), chat_id]
                )
            return rows.chat(c, chat_id, self.folder_uri)

        return self._db.write(op)

    def duplicate_chat(self, chat_id: str, title: str | None = None) -> Chat:
        """Deep-copy a chat (every branch, new ids) as "<title> (copy)"; not pinned."""
        clean = check_title(title) if title is not None else None

        def op(c: sqlite3.Connection) -> Chat:
            src = rows.chat(c, chat_id, self.folder_uri)
            found = c.execute(
                f"SELECT {rows.MSG_COLS} FROM messages WHERE chat_id = ? ORDER BY seq", (chat_id,)
            ).fetchall()
            copy_id = rows.insert_copy(c, src, clean or check_title(f"{src.title} (copy)"))
            mapping = rows.copy_messages(c, found, copy_id)
            leaf = mapping.get(src.active_leaf_id) if src.active_leaf_id else None
            c.execute("UPDATE chats SET active_leaf_id = ? WHERE id = ?", (leaf, copy_id))
            return rows.chat(c, copy_id, self.folder_uri)

        return self._db.write(op)

    def branch_chat(self, message_id: str, title: str | None = None) -> ChatDetail:
        """Start a NEW chat holding the history root→``message_id`` (that message included)."""
        clean = check_title(title) if title is not None else None

        def op(c: sqlite3.Connection) -> ChatDetail:
            message = rows.message(c, message_id)
            src = rows.chat(c, message.chat_id, self.folder_uri)
            path_ids = [m.id for m in rows.path(c, src.id, message_id)]
            by_id = rows.messages_by_id(c, path_ids)
            copy_id = rows.insert_copy(c, src, clean or check_title(f"{src.title} (branch)"))
            mapping = rows.copy_messages(c, [by_id[i] for i in path_ids], copy_id)
            c.execute(
                "UPDATE chats SET active_leaf_id = ? WHERE id = ?", (mapping[message_id], copy_id)
            )
            return rows.detail(c, copy_id, self.folder_uri)

        return self._db.write(op)

    def delete_chat(self, chat_id: str) -> None:
        """Move a chat to the trash (restorable until the trash is emptied)."""

        def op(c: sqlite3.Connection) -> None:
            rows.require_chat(c, chat_id)
            c.execute(
                "UPDATE chats SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (now_ms(), chat_id),
            )

        self._db.write(op)

    def clear_all(self) -> int:
        """Move every chat to the trash; return how many were moved."""
        return self._db.write(
            lambda c: (
                c.execute(
                    "UPDATE chats SET deleted_at = ? WHERE deleted_at IS NULL", (now_ms(),)
                ).rowcount
            )
        )

    def restore_chat(self, chat_id: str) -> Chat:
        """Take a chat out of the trash (its folder may have been deleted: then no folder)."""

        def op(c: sqlite3.Connection) -> Chat:
            rows.require_chat(c, chat_id)
            c.execute("UPDATE chats SET deleted_at = NULL WHERE id = ?", (chat_id,))
            return rows.chat(c, chat_id, self.folder_uri)

        return self._db.write(op)

    def restore_all(self) -> int:
        """Take every chat out of the trash; return how many."""
        return self._db.write(
            lambda c: (
                c.execute(
                    "UPDATE chats SET deleted_at = NULL WHERE deleted_at IS NOT NULL"
                ).rowcount
            )
        )

    def list_trash(self, *, offset: int = 0, limit: int = 50) -> ChatPage:
        """List trashed chats, most recently deleted first."""
        if offset < 0 or limit < 1:
            raise InvalidParams("offset must be >= 0 and limit >= 1.")

        def op(c: sqlite3.Connection) -> ChatPage:
            total = int(
                c.execute("SELECT count(*) FROM chats WHERE deleted_at IS NOT NULL").fetchone()[0]
            )
            found = c.execute(
                f"SELECT {rows.CHAT_COLS} FROM chats c WHERE c.deleted_at IS NOT NULL "
                "ORDER BY c.deleted_at DESC, c.seq DESC LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            items = [rows.chat_from_row(r, self.folder_uri) for r in found]
            return ChatPage(items=items, total=total, offset=offset, limit=limit)

        return self._db.read(op)

    def empty_trash(self) -> int:
        """Delete trashed chats and their messages for good; return how many chats."""
        count: int = self._db.write(
            lambda c: c.execute("DELETE FROM chats WHERE deleted_at IS NOT NULL").rowcount
        )
        log.info("emptied the trash of %s: %d chats deleted", self.folder_uri, count)
        return count

    # -- folders -----------------------------------------------------------------------

    def _check_unique_name(self, c: sqlite3.Connection, name: str, except_id: str | None) -> None:
        row = c.execute(
            "SELECT id FROM folders WHERE name = ? COLLATE NOCASE AND id IS NOT ?",
            (name, except_id),
        ).fetchone()
        if row is not None:
            raise Conflict(f"A folder named {name!r} already exists.", data={"folderId": row[0]})

    def create_folder(self, name: str) -> Folder:
        """Create a folder; names are unique (case-insensitive) → Conflict."""
        clean = check_name(name)
        folder_id = new_id()

        def op(c: sqlite3.Connection) -> Folder:
            self._check_unique_name(c, clean, None)
            c.execute(
                "INSERT INTO folders (id, name, created) VALUES (?, ?, ?)",
                (folder_id, clean, now_ms()),
            )
            return rows.folder(c, folder_id, self.folder_uri)

        return self._db.write(op)

    def rename_folder(self, folder_id: str, name: str) -> Folder:
        """Rename a folder (its chats stay in it)."""
        clean = check_name(name)

        def op(c: sqlite3.Connection) -> Folder:
            rows.require_folder(c, folder_id)
            self._check_unique_name(c, clean, folder_id)
            c.execute("UPDATE folders SET name = ? WHERE id = ?", (clean, folder_id))
            return rows.folder(c, folder_id, self.folder_uri)

        return self._db.write(op)

    def delete_folder(self, folder_id: str) -> int:
        """Delete a folder; its chats (trashed ones too) move to no folder. Return how many."""

        def op(c: sqlite3.Connection) -> int:
            rows.require_folder(c, folder_id)
            moved = c.execute(
                "UPDATE chats SET folder_id = NULL WHERE folder_id = ?", (folder_id,)
            ).rowcount
            c.execute("DELETE FROM folders WHERE id = ?", (folder_id,))
            return moved

        return self._db.write(op)

    def list_folders(self) -> list[Folder]:
        """List folders by name with the number of (non-trashed) chats in each."""
        return self._db.read(lambda c: rows.folders(c, self.folder_uri))

    # -- messages ----------------------------------------------------------------------

    def append_message(
        self,
        chat_id: str,
        parent_id: str | ActiveLeaf | None,
        role: str,
        content: str,
        *,
        thinking: str = "",
        attachments: list[dict[str, Any]] | None = None,
        stats: MessageStats | None = None,
        incomplete: bool = False,
        created_at: int | None = None,
    ) -> Message:
        """Add a message under ``parent_id`` (None: a root; ACTIVE_LEAF: after the active leaf).

        The new message becomes the chat's active leaf. User and system messages need text;
        an assistant message may start empty (a streaming placeholder, ``incomplete=True``).
        """
        check_role(role)
        check_content(role, content, attachments)
        message_id = new_id()

        def op(c: sqlite3.Connection) -> Message:
            if isinstance(parent_id, ActiveLeaf):
                parent = rows.chat(c, chat_id, self.folder_uri).active_leaf_id
            else:
                rows.require_chat(c, chat_id)
                parent = parent_id
            if parent is not None:
                owner = c.execute("SELECT chat_id FROM messages WHERE id = ?", (parent,)).fetchone()
                if owner is None:
                    raise NotFound(f"No message with id {parent!r}.", data={"messageId": parent})
                if str(owner[0]) != chat_id:
                    raise InvalidParams(
                        f"Message {parent!r} belongs to another chat than {chat_id!r}."
                    )
            values = rows.message_values(
                message_id,
                chat_id,
                parent,
                role,
                content,
                thinking=thinking,
                attachments=attachments,
                created=created_at if created_at is not None else now_ms(),
                stats=stats,
                incomplete=incomplete,
            )
            c.execute(rows.INSERT_MSG, values)
            self._touch(c, chat_id, message_id)
            return rows.with_siblings(c, rows.message(c, message_id))

        return self._db.write(op)

    def edit_user_message(
        self,
        message_id: str,
        content: str,
        *,
        attachments: list[dict[str, Any]] | Unset | None = UNSET,
    ) -> Message:
        """Create an edited copy of a user message as its new sibling (a new, active branch).

        Attachments are kept unless given. The caller then generates the assistant answer
        with the returned message as parent.
        """

        def op(c: sqlite3.Connection) -> Message:
            original = rows.message(c, message_id)
            if original.role != "user":
                raise InvalidParams(
                    f"Message {message_id!r} is a {original.role} message; only user "
                    "messages can be edited."
                )
            files = original.attachments if isinstance(attachments, Unset) else attachments
            check_content("user", content, files)
            fresh = new_id()
            values = rows.message_values(
                fresh,
                original.chat_id,
                original.parent_id,
                "user",
                content,
                attachments=files,
                created=now_ms(),
            )
            c.execute(rows.INSERT_MSG, values)
            self._touch(c, original.chat_id, fresh)
            return rows.with_siblings(c, rows.message(c, fresh))

        return self._db.write(op)

    def prepare_regenerate(self, message_id: str) -> Message:
        """Return the user message to answer again: an assistant message's parent, or itself.

        Nothing changes yet: the caller appends the new assistant message under the returned
        message (a sibling of the old answer), which makes it the active leaf.
        """

        def op(c: sqlite3.Connection) -> Message:
            message = rows.message(c, message_id)
            if message.role == "user":
                return rows.with_siblings(c, message)
            if message.role != "assistant" or message.parent_id is None:
                raise InvalidParams(f"Message {message_id!r} has no user message to answer again.")
            parent = rows.message(c, message.parent_id)
            return rows.with_siblings(c, parent)

        return self._db.read(op)

    def switch_branch(self, message_id: str) -> ChatDetail:
        """Make the branch through ``message_id`` active (down its most recent children)."""

        def op(c: sqlite3.Connection) -> ChatDetail:
            message = rows.message(c, message_id)
            _, children = rows.skeleton(c, message.chat_id)
            leaf = rows.descend(children, message_id)
            c.execute("UPDATE chats SET active_leaf_id = ? WHERE id = ?", (leaf, message.chat_id))
            return rows.detail(c, message.chat_id, self.folder_uri)

        return self._db.write(op)

    def update_message(
        self,
        message_id: str,
        *,
        content: str | None = None,
        thinking: str | None = None,
        stats: MessageStats | None = None,
        incomplete: bool | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> None:
        """Update a message in place while streaming; only the given fields change.

        ``None`` stats fields are left unchanged. One lookup and two UPDATEs, no tree reads:
        cheap to call every few hundred milliseconds.
        """
        columns: dict[str, Any] = {}
        if content is not None:
            columns["content"] = content
        if thinking is not None:
            columns["thinking"] = thinking
        if incomplete is not None:
            columns["incomplete"] = 1 if incomplete else 0
        if attachments is not None:
            columns["attachments_json"] = rows.dumps(attachments) if attachments else None
        if stats is not None:
            columns |= rows.stats_columns(stats)

        def op(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT chat_id, role, attachments_json FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"No message with id {message_id!r}.", data={"messageId": message_id}
                )
            if content is not None:
                files = (
                    attachments if attachments is not None else rows.loads(row["attachments_json"])
                )
                check_content(str(row["role"]), content, files)
            if not columns:
                return
            assignments = ", ".join(f"{name} = ?" for name in columns)
            c.execute(
                f"UPDATE messages SET {assignments} WHERE id = ?", [*columns.values(), message_id]
            )
            self._touch(c, str(row["chat_id"]))

        self._db.write(op)

    def get_message(self, message_id: str) -> Message:
        """Return one message with its sibling info."""
        return self._db.read(lambda c: rows.with_siblings(c, rows.message(c, message_id)))

    def get_history(self, message_id: str) -> list[Message]:
        """Return the messages root→``message_id`` (the prompt history for that message)."""

        def op(c: sqlite3.Connection) -> list[Message]:
            message = rows.message(c, message_id)
            return rows.path(c, message.chat_id, message_id)

        return self._db.read(op)

    # -- search ------------------------------------------------------------------------

    def search(
        self, query: str, *, limit: int = 20, folder_id: str | None = None
    ) -> list[SearchHit]:
        """Find chats (not trashed) whose title or messages contain every word of ``query``.

        One hit per chat, best first, with its best message's snippet. Words match whole
        tokens with FTS5 (case- and accent-insensitive) and substrings in the LIKE fallback.
        Matches are wrapped in « » (see :data:`~lsp_server.storage.records.SNIPPET_OPEN`).
        """
        terms = search.search_terms(query)
        if limit < 1:
            raise InvalidParams("limit must be >= 1.")
        if not terms:
            return []
        fts = self._db.fts
        return self._db.read(
            lambda c: search.search(
                c, self.folder_uri, terms, limit=limit, folder_id=folder_id, fts=fts
            )
        )

    # -- export / import ---------------------------------------------------------------

    def export_json(self, chat_id: str) -> dict[str, Any]:
        """Export a chat with its whole message tree (see :func:`transfer.export_json`)."""
        return self._db.read(lambda c: transfer.export_json(c, chat_id, self.folder_uri))

    def export_markdown(self, chat_id: str) -> str:
        """Export a chat's active branch as Markdown (thinking in a collapsed <details>)."""
        return transfer.markdown(self.get_chat(chat_id))

    def import_json(self, data: dict[str, Any]) -> Chat:
        """Import a chat exported by :meth:`export_json` (see :func:`transfer.import_json`)."""
        chat_data, messages = transfer.validate_export(data)
        return self._db.write(
            lambda c: transfer.import_json(c, chat_data, messages, self.folder_uri)
        )
