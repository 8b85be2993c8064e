"""``SqliteStore``: the web store in one SQLite file, shared by the threads and processes of one machine.

WAL mode gives atomic transactions (a killed writer leaves the last committed
state), readers that never wait for the writer, and cross-process locking.
Triggers keep each value's reference count and the store's byte total exact
inside the same transactions, so every process sees one consistent bound.

A file that is not a database, is truncated, or was written in an older
format used to make every ``gym.make`` raise ``sqlite3.DatabaseError`` without
naming it. Now the file (with its ``-wal``/``-shm``) is moved aside to
``<name>.corrupt-<time>``, a warning names both paths, and an empty store takes
its place; a process that finds the file already replaced reconnects instead.
With ``repair=False`` (a snapshot being replayed: an empty store would answer every
call with "not in this snapshot") the file is left alone and the error names it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from deepresearch.envs.web.storage.store import (
    ENTRY_OVERHEAD_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    LOW_WATER,
    TOUCH_RESOLUTION_S,
    Hit,
    StoredEntry,
    WebStore,
    check_max_bytes,
    decode_value,
    encode_value,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

_ENTRY_BYTES = f"length(CAST({{row}}.key AS BLOB)) + length(CAST({{row}}.meta AS BLOB)) + {ENTRY_OVERHEAD_BYTES}"
_SCHEMA = [
    "CREATE TABLE info (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL, refs INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE entries (key TEXT PRIMARY KEY, hash TEXT NOT NULL, meta TEXT NOT NULL, created REAL NOT NULL, "
    "used REAL NOT NULL)",
    "CREATE INDEX entries_used ON entries(used)",
    "CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL)",
    "INSERT INTO totals VALUES (0, 0)",
    """CREATE TRIGGER blob_added AFTER INSERT ON blobs BEGIN
        UPDATE totals SET bytes = bytes + length(NEW.data) WHERE id = 0;
    END""",
    """CREATE TRIGGER blob_removed AFTER DELETE ON blobs BEGIN
        UPDATE totals SET bytes = bytes - length(OLD.data) WHERE id = 0;
    END""",
    f"""CREATE TRIGGER entry_added AFTER INSERT ON entries BEGIN
        UPDATE blobs SET refs = refs + 1 WHERE hash = NEW.hash;
        UPDATE totals SET bytes = bytes + {_ENTRY_BYTES.format(row="NEW")} WHERE id = 0;
    END""",
    f"""CREATE TRIGGER entry_removed AFTER DELETE ON entries BEGIN
        UPDATE totals SET bytes = bytes - ({_ENTRY_BYTES.format(row="OLD")}) WHERE id = 0;
        UPDATE blobs SET refs = refs - 1 WHERE hash = OLD.hash;
        DELETE FROM blobs WHERE hash = OLD.hash AND refs <= 0;
    END""",
    f"""CREATE TRIGGER entry_changed AFTER UPDATE OF hash, meta ON entries BEGIN
        UPDATE totals SET bytes = bytes + ({_ENTRY_BYTES.format(row="NEW")}) - ({_ENTRY_BYTES.format(row="OLD")})
            WHERE id = 0;
        UPDATE blobs SET refs = refs + 1 WHERE hash = NEW.hash AND NEW.hash != OLD.hash;
        UPDATE blobs SET refs = refs - 1 WHERE hash = OLD.hash AND NEW.hash != OLD.hash;
        DELETE FROM blobs WHERE hash = OLD.hash AND refs <= 0;
    END""",
    f"INSERT INTO info VALUES ('format', '{FORMAT_NAME}'), ('version', '{FORMAT_VERSION}')",
]
_CORRUPTION = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class UnreadableStore(ValueError):
    """A damaged store file that is not to be repaired (``repair=False``)."""


class _WrongFormat(sqlite3.DatabaseError):
    """The file is a database, but not a web store this version can read (e.g. the old one-table cache)."""


def _is_corruption(error: sqlite3.DatabaseError) -> bool:
    if isinstance(error, _WrongFormat):
        return True
    name = getattr(error, "sqlite_errorname", "")
    return any(name.startswith(code) for code in _CORRUPTION) or str(error) in (
        "file is not a database",
        "database disk image is malformed",
    )


class SqliteStore(WebStore):
    def __init__(self, path: str | Path, max_bytes: int, repair: bool = True) -> None:
        self.path = Path(path)
        self.repair = repair
        self.location = str(self.path)
        self.max_bytes = check_max_bytes(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._recover_lock = threading.Lock()
        self._generation = 0
        self._inode: int | None = None
        self._call(lambda connection: None)  # open (and repair) now: a broken file is handled at construction

    # ------------------------------------------------------------ connections and recovery
    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=10000")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._check_format(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_format(self, connection: sqlite3.Connection) -> None:
        """Create the schema in a new file (under the write lock, so two processes cannot interleave), then
        check the format: a database without our ``info`` table (e.g. the old one-table cache) is refused."""
        if not self._format_info(connection):
            connection.execute("BEGIN IMMEDIATE")
            try:
                tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
                if not tables:
                    for statement in _SCHEMA:
                        connection.execute(statement)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        info = self._format_info(connection)
        if info.get("format") != FORMAT_NAME:
            raise _WrongFormat(f"it is not a {FORMAT_NAME}")
        if int(info.get("version", "0")) > FORMAT_VERSION:
            raise ValueError(
                f"{self.path} was written by a newer deepresearch (store format {info['version']}, "
                f"this version reads {FORMAT_VERSION}); upgrade, or point to another file"
            )
        connection.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()

    @staticmethod
    def _format_info(connection: sqlite3.Connection) -> dict[str, str]:
        try:
            return dict(connection.execute("SELECT name, value FROM info").fetchall())
        except sqlite3.OperationalError:  # no such table: a new file, or not ours
            return {}

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared), reopened after a recovery."""
        local = self._local
        if getattr(local, "generation", None) != self._generation or local.connection is None:
            if getattr(local, "connection", None) is not None:
                local.connection.close()
            local.connection = None
            generation = self._generation
            local.connection = self._open()
            local.generation = generation
            if self._inode is None:
                self._inode = os.stat(self.path).st_ino
        return local.connection

    def _call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation``; on corruption move the file aside, start an empty store and run it once more."""
        generation = self._generation
        try:
            return operation(self._connection())
        except sqlite3.DatabaseError as error:
            if not _is_corruption(error):
                raise
            if not self.repair:
                raise UnreadableStore(f"{self.path} is not a readable web store ({error}); it was left as it is") from None
            self._recover(generation, error)
        return operation(self._connection())

    def _recover(self, generation: int, error: sqlite3.DatabaseError) -> None:
        with self._recover_lock:
            if generation != self._generation:
                return  # another thread of this process already recovered
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current is not None and (self._inode is None or current == self._inode):
                aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
                for suffix in ("", "-wal", "-shm"):
                    source = Path(f"{self.path}{suffix}")
                    if source.exists():
                        source.replace(Path(f"{aside}{suffix}"))
                logger.warning(
                    "web store %s could not be read (%s); moved it aside to %s and started an empty one",
                    self.path, error, aside,
                )
            # else: another process already replaced the file; reconnecting is enough
            self._inode = None
            self._generation += 1

    # ------------------------------------------------------------ the store
    def get(self, key: str) -> Hit | None:
        def read(connection: sqlite3.Connection) -> tuple | None:
            return connection.execute(
                "SELECT blobs.data, entries.meta, entries.created, entries.used FROM entries "
                "JOIN blobs ON blobs.hash = entries.hash WHERE entries.key = ?",
                (key,),
            ).fetchone()

        row = self._call(read)
        if row is None:
            return None
        data, meta, created, used = row
        now = time.time()
        if now - used > TOUCH_RESOLUTION_S:
            self._call(lambda c: c.execute("UPDATE entries SET used = ? WHERE key = ?", (now, key)))
        return Hit(decode_value(data), json.loads(meta), created)

    def put(self, key: str, value: Any, meta: dict[str, Any], created: float | None = None) -> None:
        content_hash, data = encode_value(value)
        meta_text = json.dumps(meta, sort_keys=True)
        now = time.time()

        def write(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute("INSERT OR IGNORE INTO blobs(hash, data) VALUES (?, ?)", (content_hash, data))
                connection.execute(
                    "INSERT INTO entries(key, hash, meta, created, used) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET hash = excluded.hash, meta = excluded.meta, "
                    "created = excluded.created, used = excluded.used",
                    (key, content_hash, meta_text, now if created is None else created, now),
                )
                self._evict(connection, self.max_bytes, only_if_over=True)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

        self._call(write)

    def _evict(self, connection: sqlite3.Connection, max_bytes: int, only_if_over: bool) -> int:
        """Delete LRU entries (inside the caller's transaction) down to ``LOW_WATER * max_bytes`` once over."""
        total = connection.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()[0]
        if only_if_over and total <= max_bytes:
            return 0
        target = int(max_bytes * LOW_WATER) if only_if_over else max_bytes
        evicted = 0
        while total > target:
            oldest = connection.execute("SELECT key FROM entries ORDER BY used LIMIT 64").fetchall()
            if not oldest:
                break
            for (key,) in oldest:
                connection.execute("DELETE FROM entries WHERE key = ?", (key,))
                evicted += 1
                total = connection.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()[0]
                if total <= target:
                    break
        return evicted

    def evict_to(self, max_bytes: int) -> int:
        def write(connection: sqlite3.Connection) -> int:
            connection.execute("BEGIN IMMEDIATE")
            try:
                evicted = self._evict(connection, max_bytes, only_if_over=False)
                connection.execute("COMMIT")
                return evicted
            except BaseException:
                connection.execute("ROLLBACK")
                raise

        return self._call(write)

    def delete(self, key: str) -> bool:
        return self._call(lambda c: c.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount) > 0

    def entries(self) -> Iterator[StoredEntry]:
        rows = self._call(
            lambda c: c.execute("SELECT key, hash, meta, created, used FROM entries ORDER BY used, key").fetchall()
        )
        for key, content_hash, meta, created, used in rows:
            yield StoredEntry(key, content_hash, json.loads(meta), created, used)

    def value(self, content_hash: str) -> Any | None:
        row = self._call(lambda c: c.execute("SELECT data FROM blobs WHERE hash = ?", (content_hash,)).fetchone())
        return None if row is None else decode_value(row[0])

    def usage(self) -> dict[str, int]:
        def read(connection: sqlite3.Connection) -> dict[str, int]:
            return {
                "entries": connection.execute("SELECT COUNT(*) FROM entries").fetchone()[0],
                "values": connection.execute("SELECT COUNT(*) FROM blobs").fetchone()[0],
                "bytes": connection.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()[0],
                "max_bytes": self.max_bytes,
            }

        return self._call(read)

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
