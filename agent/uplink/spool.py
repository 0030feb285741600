"""Durable FIFO spool of encoded batches in SQLite (WAL, synchronous=FULL).

docs/uplink.md, "Spool". What it guarantees:
- ``put`` returns only after the batches are committed and the WAL is fsync'd, so a batch
  the uploader sends is already on disk; several batches put together commit together.
- A batch leaves the spool only by ``ack`` (the collector answered 2xx ``stored`` or
  ``duplicate``), by ``dead_letter`` (a permanent 4xx), or by the size cap.
- Order is insertion order (AUTOINCREMENT: a sequence number is never reused).
- A ``kill -9`` at any point leaves either the old or the new state of a transaction; a
  batch sent but not yet acked is sent again and the collector answers ``duplicate``.
- Size cap on the stored (gzip) bytes. Policy: drop the *oldest* batches to make room
  (the newest inventory and violations matter most once the collector is back), count
  them, warn. A single batch larger than the whole cap is refused and counted. A new
  heartbeat-only batch replaces older heartbeat-only ones (only the latest health matters).

Stores only encoded batches (already reduced to the wire schema) and counters; never logs
a body.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

SPOOL_FILE = "spool.sqlite3"
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEAD_KEEP = 1_000  # dead-letter rows kept for inspection; the counter keeps counting
SCHEMA_VERSION = 1
COUNTERS = ("dropped", "dropped_bytes", "refused", "coalesced", "dead", "stored", "duplicate")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL UNIQUE,
    heartbeat_only INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL,
    size INTEGER NOT NULL,
    enqueued REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL,
    enqueued REAL NOT NULL,
    failed REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SpoolError(Exception):
    """The spool cannot be opened or written (disk, permissions, a damaged file)."""


@dataclass(frozen=True)
class SpoolItem:
    batch_id: str
    body: bytes  # gzip'd JSON, exactly what is POSTed
    heartbeat_only: bool = False


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    batch_id: str
    body: bytes
    attempts: int


@dataclass(frozen=True)
class PutResult:
    added: int = 0
    already: int = 0  # same batch id still waiting: not stored twice
    dropped: int = 0  # oldest batches removed by the size cap
    refused: int = 0  # batches larger than the whole cap
    coalesced: int = 0  # older heartbeat-only batches replaced


@dataclass(frozen=True)
class SpoolStats:
    depth: int
    bytes: int
    max_bytes: int
    dead_kept: int
    oldest_enqueued: float | None
    counters: dict[str, int]


class Spool:
    """One spool directory. Thread-safe (one connection behind a lock); several processes
    may open it (SQLite locking), ``drain.DrainLock`` keeps to one sender."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"spool cap must be positive, got {max_bytes}")
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = directory / SPOOL_FILE
            # device inventories are not for other local users: create the file 0600
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"{directory}: cannot open spool: {exc}") from None
        if mode != "wal":  # e.g. a filesystem without shared memory: refuse, do not degrade
            self._db.close()
            raise SpoolError(f"{directory}: cannot use a WAL journal (got {mode})")
        self._init_schema()
        _fsync_dir(directory)  # the new database and WAL file names are durable too

    # --- write side -----------------------------------------------------------------------

    def put(self, items: Sequence[SpoolItem]) -> PutResult:
        """Append batches in order, in one transaction; durable when this returns."""
        added = already = dropped = dropped_bytes = refused = coalesced = 0
        now = time.time()
        with self._lock, self._tx() as db:
            used = db.execute("SELECT COALESCE(SUM(size), 0) FROM batches").fetchone()[0]
            for item in items:
                size = len(item.body)
                if size > self.max_bytes:
                    refused += 1
                    continue
                if db.execute(
                    "SELECT 1 FROM batches WHERE batch_id = ?", (item.batch_id,)
                ).fetchone():
                    already += 1
                    continue
                if item.heartbeat_only:
                    freed = db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM batches"
                        " WHERE heartbeat_only = 1"
                    ).fetchone()
                    db.execute("DELETE FROM batches WHERE heartbeat_only = 1")
                    coalesced += freed[0]
                    used -= freed[1]
                while used + size > self.max_bytes:
                    seq, old_size = db.execute(
                        "SELECT seq, size FROM batches ORDER BY seq LIMIT 1"
                    ).fetchone()
                    db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
                    used -= old_size
                    dropped += 1
                    dropped_bytes += old_size
                db.execute(
                    "INSERT INTO batches (batch_id, heartbeat_only, body, size, enqueued)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (item.batch_id, int(item.heartbeat_only), item.body, size, now),
                )
                used += size
                added += 1
            _bump(
                db,
                dropped=dropped,
                dropped_bytes=dropped_bytes,
                refused=refused,
                coalesced=coalesced,
            )
        if dropped or refused:
            total = self.stats().counters
            log.warning(
                "spool %s reached its cap of %d bytes: dropped %d oldest batches (%d bytes),"
                " refused %d oversized; %d dropped and %d refused since it was created",
                self.directory,
                self.max_bytes,
                dropped,
                dropped_bytes,
                refused,
                total["dropped"],
                total["refused"],
            )
        return PutResult(added, already, dropped, refused, coalesced)

    def ack(self, seq: int, *, duplicate: bool = False) -> None:
        """The collector has the batch (``stored`` or ``duplicate``): forget it."""
        with self._lock, self._tx() as db:
            db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            _bump(db, **{"duplicate" if duplicate else "stored": 1})

    def note_failure(self, seq: int, reason: str) -> None:
        """A transient failure: keep the batch, remember why (status or error class)."""
        with self._lock, self._tx() as db:
            db.execute(
                "UPDATE batches SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (reason[:200], seq),
            )

    def dead_letter(self, seq: int, reason: str) -> None:
        """A permanent refusal: move the batch aside so it does not block the queue."""
        with self._lock, self._tx() as db:
            row = db.execute(
                "SELECT batch_id, body, size, enqueued FROM batches WHERE seq = ?", (seq,)
            ).fetchone()
            if row is None:
                return
            db.execute(
                "INSERT OR REPLACE INTO dead VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, *row, time.time(), reason[:200]),
            )
            db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            db.execute(
                "DELETE FROM dead WHERE seq NOT IN"
                " (SELECT seq FROM dead ORDER BY seq DESC LIMIT ?)",
                (DEAD_KEEP,),
            )
            _bump(db, dead=1)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- read side ------------------------------------------------------------------------

    def head(self) -> SpoolEntry | None:
        """The oldest waiting batch."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, batch_id, body, attempts FROM batches ORDER BY seq LIMIT 1"
            ).fetchone()
        return SpoolEntry(*row) if row else None

    def batch_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT batch_id FROM batches ORDER BY seq")]

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def dead_letters(self) -> list[tuple[str, str]]:
        """(batch id, reason) of the kept dead letters, oldest first."""
        with self._lock:
            return [
                (r[0], r[1])
                for r in self._db.execute("SELECT batch_id, reason FROM dead ORDER BY seq")
            ]

    def stats(self) -> SpoolStats:
        with self._lock:
            depth, size, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(enqueued) FROM batches"
            ).fetchone()
            dead = self._db.execute("SELECT COUNT(*) FROM dead").fetchone()[0]
            counters = dict.fromkeys(COUNTERS, 0)
            counters.update(self._db.execute("SELECT name, value FROM counters"))
        return SpoolStats(depth, size, self.max_bytes, dead, oldest, counters)

    # --- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE: take the write lock up front, so two processes never both read a
        # size total and then both write
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:  # disk full, I/O error, a damaged file
            raise SpoolError(f"{self.directory}: spool write failed: {exc}") from None

    def _init_schema(self) -> None:
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:  # nothing to write: opens on a full disk too, so
                return  # ``uplink status`` and a drain that frees space still work there
            with self._lock, self._tx() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise SpoolError(
                        f"{self.directory}: spool format {version} is newer than this medtap"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.directory}: cannot open spool: {exc}") from None


def _bump(db: sqlite3.Connection, **deltas: int) -> None:
    for name, delta in deltas.items():
        if delta:
            db.execute(
                "INSERT INTO counters VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, delta),
            )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
