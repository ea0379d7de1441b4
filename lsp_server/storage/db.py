"""SQLite plumbing for the chat store: connection, migrations, FTS5, retries, error mapping.

One :class:`Database` wraps one connection to one file. Writes run in ``BEGIN IMMEDIATE``
transactions with a busy timeout and a bounded retry, so two processes writing the same
file queue up instead of failing with "database is locked". SQLite errors that a user can
act on (disk full, read-only, cannot open, corrupt) become :class:`StorageError` with a
message saying what to do. A file that is not a database (or fails the optional integrity
check) is moved aside as ``<name>.corrupt-YYYYMMDD-HHMMSS`` and a new one is created;
:attr:`Database.recovered_from` then names the moved file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from lsp_server.core.errors import StorageError
from lsp_server.core.paths import create_private_file

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 3

# Primary result codes (the low byte of ``sqlite_errorcode``).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

Migration = Callable[[sqlite3.Connection], None]


def _run_all(conn: sqlite3.Connection, statements: Sequence[str]) -> None:
    """Execute DDL statements one by one (``executescript`` would COMMIT the transaction)."""
    for statement in statements:
        conn.execute(statement)


SCHEMA_V1: tuple[str, ...] = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE folders (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created INTEGER NOT NULL
    )""",
    """CREATE TABLE chats (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        folder_id TEXT REFERENCES folders(id) ON DELETE SET NULL,
        pinned INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        preset_json TEXT,
        system_prompt TEXT,
        model TEXT,
        active_leaf_id TEXT,
        deleted_at INTEGER
    )""",
    "CREATE INDEX chats_folder ON chats(folder_id)",
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        parent_id TEXT REFERENCES messages(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
        content TEXT NOT NULL,
        attachments_json TEXT,
        created INTEGER NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        ttft_ms REAL,
        tokens_per_s REAL,
        stop_reason TEXT,
        model TEXT,
        incomplete INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX messages_chat ON messages(chat_id, seq)",
    "CREATE INDEX messages_parent ON messages(parent_id)",
)
"""Version 1: the first schema (frozen; later changes go in new migrations)."""

SCHEMA_V2: tuple[str, ...] = (
    "ALTER TABLE messages ADD COLUMN thinking TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE messages ADD COLUMN truncation_json TEXT",
    "CREATE INDEX chats_live_updated ON chats(pinned, updated, seq) WHERE deleted_at IS NULL",
    "CREATE INDEX chats_live_created ON chats(pinned, created, seq) WHERE deleted_at IS NULL",
    "CREATE INDEX chats_live_title ON chats(pinned, title COLLATE NOCASE, seq)"
    " WHERE deleted_at IS NULL",
    "CREATE INDEX chats_trash ON chats(deleted_at) WHERE deleted_at IS NOT NULL",
)
"""Version 2: reasoning text and truncation info on messages, indexes for chat lists."""


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Create the first schema."""
    _run_all(conn, SCHEMA_V1)


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Add ``thinking`` and ``truncation_json`` to messages and the list indexes."""
    _run_all(conn, SCHEMA_V2)


MIGRATIONS: tuple[Migration, ...] = (_migrate_v1, _migrate_v2)
"""``MIGRATIONS[i]`` upgrades a database from ``user_version`` i to i + 1."""

LATEST_VERSION = len(MIGRATIONS)

FTS_TABLES: tuple[str, ...] = ("messages_fts", "chats_fts")
FTS_TRIGGERS: tuple[str, ...] = (
    "messages_fts_ai",
    "messages_fts_ad",
    "messages_fts_au",
    "chats_fts_ai",
    "chats_fts_ad",
    "chats_fts_au",
)
_TOKENIZER = "unicode61 remove_diacritics 2"
_FTS_DDL: tuple[str, ...] = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5("
    f"content, content='messages', content_rowid='seq', tokenize='{_TOKENIZER}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chats_fts USING fts5("
    f"title, content='chats', content_rowid='seq', tokenize='{_TOKENIZER}')",
    """CREATE TRIGGER IF NOT EXISTS messages_fts_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.seq, new.content);
    END""",
    """CREATE TRIGGER IF NOT EXISTS messages_fts_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        VALUES ('delete', old.seq, old.content);
    END""",
    """CREATE TRIGGER IF NOT EXISTS messages_fts_au AFTER UPDATE OF content ON messages
    WHEN old.content IS NOT new.content BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        VALUES ('delete', old.seq, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.seq, new.content);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chats_fts_ai AFTER INSERT ON chats BEGIN
        INSERT INTO chats_fts(rowid, title) VALUES (new.seq, new.title);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chats_fts_ad AFTER DELETE ON chats BEGIN
        INSERT INTO chats_fts(chats_fts, rowid, title) VALUES ('delete', old.seq, old.title);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chats_fts_au AFTER UPDATE OF title ON chats
    WHEN old.title IS NOT new.title BEGIN
        INSERT INTO chats_fts(chats_fts, rowid, title) VALUES ('delete', old.seq, old.title);
        INSERT INTO chats_fts(rowid, title) VALUES (new.seq, new.title);
    END""",
)

_fts5_available: bool | None = None


def fts5_available() -> bool:
    """Return whether this Python's SQLite library has the FTS5 extension."""
    global _fts5_available
    if _fts5_available is None:
        probe = sqlite3.connect(":memory:")
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
            _fts5_available = True
        except sqlite3.OperationalError:
            _fts5_available = False
        finally:
            probe.close()
    return _fts5_available


def error_kind(exc: BaseException) -> str:
    """Classify a SQLite error: busy, full, readonly, cantopen, corrupt, ioerr or other."""
    code = getattr(exc, "sqlite_errorcode", None)
    base = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if base in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in text or "busy" in text:
        return "busy"
    if base == _SQLITE_FULL or "disk is full" in text or "database or disk is full" in text:
        return "full"
    if base == _SQLITE_READONLY or "readonly database" in text or "read-only" in text:
        return "readonly"
    if base == _SQLITE_CANTOPEN or "unable to open database" in text:
        return "cantopen"
    if base in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return "corrupt"
    if base == _SQLITE_IOERR or "disk i/o error" in text:
        return "ioerr"
    return "other"


def storage_error(exc: BaseException, path: Path) -> StorageError:
    """Turn a SQLite or OS error on ``path`` into a StorageError saying what to do."""
    kind = error_kind(exc) if isinstance(exc, sqlite3.Error) else "cantopen"
    where = str(path)
    messages = {
        "full": f"The disk holding the chat database {where} is full: free some space, "
        "then try again.",
        "readonly": f"The chat database {where} is read-only: make its folder writable or "
        "set OPEN_LLM_LSP_DATA_DIR to a writable folder.",
        "cantopen": f"Cannot open the chat database {where}: check that its folder exists and "
        "is writable, or set OPEN_LLM_LSP_DATA_DIR to a writable folder.",
        "corrupt": f"The chat database {where} is damaged: restart the server to move it "
        "aside and start a new one.",
        "busy": f"The chat database {where} stayed locked by another process for too long: "
        "try again.",
        "ioerr": f"Disk I/O error on the chat database {where}: check the disk, then try again.",
        "other": f"Chat database error on {where}: {exc}",
    }
    return StorageError(messages[kind], data={"path": where, "reason": kind, "detail": str(exc)})


def corrupt_name(path: Path, now: datetime | None = None) -> Path:
    """Return a free ``<name>.corrupt-YYYYMMDD-HHMMSS`` path next to ``path``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
        counter += 1
    return candidate


class _CorruptDatabase(Exception):
    """Internal: the file is not a usable database (wrapped cause kept)."""


class Database:
    """One SQLite connection with migrations, FTS5 set-up, serialized access and retries."""

    def __init__(
        self,
        path: Path,
        *,
        use_fts: bool | None = None,
        read_only: bool = False,
        integrity_check: bool = False,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        """Open (creating, migrating or recovering) the database at ``path``.

        ``use_fts``: None uses FTS5 when available, False forces the LIKE fallback, True
        requires FTS5 (StorageError when missing). ``read_only`` opens with ``mode=ro``.
        ``integrity_check`` runs ``PRAGMA quick_check`` at open (slower on big files).
        """
        self.path = path
        self.read_only = read_only
        self.busy_timeout_s = busy_timeout_s
        self.retries = retries
        self.recovered_from: Path | None = None
        self._lock = threading.RLock()
        if use_fts and not fts5_available():
            raise StorageError("FTS5 is not available in this SQLite build.", data={})
        want_fts = fts5_available() if use_fts is None else use_fts
        marker = self.damage_marker
        suspect = not read_only and marker.exists()
        if suspect:
            log.warning("chat database %s had a corruption error last time; checking it", path)
        self.conn = self._open(integrity_check or suspect)
        try:
            self.fts = self._setup_fts(want_fts)
        except BaseException:
            self.conn.close()
            raise
        if suspect:
            marker.unlink(missing_ok=True)

    @property
    def damage_marker(self) -> Path:
        """File created when an operation hits corruption: the next open checks integrity."""
        return self.path.with_name(self.path.name + ".damaged")

    # -- opening -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open the raw connection and apply the per-connection pragmas."""
        if not self.read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_error(exc, self.path) from exc
            create_private_file(self.path)  # 0600, and so its -wal/-shm (chats are private)
        target = f"{self.path.resolve().as_uri()}?mode=ro" if self.read_only else str(self.path)
        conn = sqlite3.connect(
            target,
            timeout=self.busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
            uri=self.read_only,
        )
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if not self.read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self, integrity_check: bool) -> sqlite3.Connection:
        """Connect, probe and migrate; move a corrupt file aside and start afresh once."""
        try:
            return self._open_once(integrity_check)
        except _CorruptDatabase as exc:
            if self.read_only:
                cause = exc.__cause__ or exc
                raise storage_error(cause, self.path) from exc
            self.recovered_from = self._move_aside()
            log.warning(
                "chat database %s was corrupt (%s); moved to %s and started a new one",
                self.path,
                exc.__cause__ or exc,
                self.recovered_from,
            )
            try:
                return self._open_once(False)
            except _CorruptDatabase as again:
                raise storage_error(again.__cause__ or again, self.path) from again

    def _open_once(self, integrity_check: bool) -> sqlite3.Connection:
        """One attempt at connect + probe + migrate; _CorruptDatabase if the file is bad."""
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            if error_kind(exc) == "corrupt":
                raise _CorruptDatabase(str(exc)) from exc
            raise storage_error(exc, self.path) from exc
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if integrity_check:
                row = conn.execute("PRAGMA quick_check").fetchone()
                if row is None or row[0] != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {row}")
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            if error_kind(exc) == "corrupt":
                raise _CorruptDatabase(str(exc)) from exc
            raise storage_error(exc, self.path) from exc
        except StorageError as exc:
            conn.close()
            if exc.data.get("reason") == "corrupt":
                raise _CorruptDatabase(exc.message) from exc
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self) -> Path:
        """Rename the database (and its -wal/-shm files) to a timestamped corrupt name."""
        target = corrupt_name(self.path)
        try:
            self.path.rename(target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.rename(target.with_name(target.name + suffix))
        except OSError as exc:
            raise storage_error(exc, self.path) from exc
        return target

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Run forward migrations up to LATEST_VERSION (no-op when current)."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == LATEST_VERSION:
            return
        if version > LATEST_VERSION:
            raise StorageError(
                f"The chat database {self.path} was written by a newer version "
                f"(schema {version}, this server knows {LATEST_VERSION}): update the server.",
                data={"path": str(self.path), "reason": "newerSchema"},
            )
        if self.read_only:
            raise StorageError(
                f"The chat database {self.path} needs an upgrade but is opened read-only.",
                data={"path": str(self.path), "reason": "readonly"},
            )

        def upgrade(c: sqlite3.Connection) -> None:
            current = int(c.execute("PRAGMA user_version").fetchone()[0])
            for index in range(current, LATEST_VERSION):
                log.info("migrating chat database %s to schema %d", self.path, index + 1)
                MIGRATIONS[index](c)
            c.execute(f"PRAGMA user_version = {LATEST_VERSION}")

        self._transaction(conn, upgrade, immediate=True)

    def _setup_fts(self, want: bool) -> bool:
        """Create the FTS5 tables and triggers (rebuilding if any was missing); return use."""
        if self.read_only:
            return want and self._fts_objects_present(self.conn) == len(FTS_TABLES) + len(
                FTS_TRIGGERS
            )
        if not want:
            if not fts5_available():
                # Triggers on a module we cannot load would make every write fail.
                self.write(
                    lambda c: _run_all(c, [f"DROP TRIGGER IF EXISTS {t}" for t in FTS_TRIGGERS])
                )
            return False
        expected = len(FTS_TABLES) + len(FTS_TRIGGERS)
        if self._fts_objects_present(self.conn) == expected:
            return True

        def create(c: sqlite3.Connection) -> None:
            if self._fts_objects_present(c) == expected:
                return
            _run_all(c, _FTS_DDL)
            for table in FTS_TABLES:
                c.execute(f"INSERT INTO {table}({table}) VALUES ('rebuild')")
            log.info("built the full-text index of %s", self.path)

        self.write(create)
        return True

    @staticmethod
    def _fts_objects_present(conn: sqlite3.Connection) -> int:
        """Count the FTS tables and triggers present in the schema."""
        names = FTS_TABLES + FTS_TRIGGERS
        marks = ",".join("?" for _ in names)
        row = conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE name IN ({marks})", names
        ).fetchone()
        return int(row[0])

    # -- transactions ------------------------------------------------------------------

    def _transaction(
        self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], *, immediate: bool
    ) -> T:
        """Run ``fn`` in one transaction, retrying (bounded) when the file stays locked."""
        attempt = 0
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.Error as exc:
                kind = error_kind(exc)
                if kind == "busy" and attempt < self.retries:
                    attempt += 1
                    delay = min(0.05 * (2**attempt), 1.0)
                    log.debug("chat database busy (%s); retry %d in %.2fs", exc, attempt, delay)
                    time.sleep(delay)
                    continue
                if kind == "corrupt":
                    self._mark_damaged(exc)
                raise storage_error(exc, self.path) from exc

    def _mark_damaged(self, exc: BaseException) -> None:
        """Leave a marker so the next open runs the integrity check (and recovers)."""
        log.error("chat database %s is damaged: %s", self.path, exc)
        if self.read_only:
            return
        try:
            self.damage_marker.touch()
        except OSError as err:  # pragma: no cover - best effort
            log.warning("cannot write %s: %s", self.damage_marker, err)

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a ``BEGIN IMMEDIATE`` transaction (serialized, retried)."""
        with self._lock:
            return self._transaction(self.conn, fn, immediate=True)

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a read transaction (one consistent snapshot)."""
        with self._lock:
            return self._transaction(self.conn, fn, immediate=False)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            try:
                self.conn.close()
            except sqlite3.Error as exc:  # pragma: no cover - close rarely fails
                log.debug("closing %s: %s", self.path, exc)
