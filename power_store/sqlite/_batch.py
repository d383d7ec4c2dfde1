"""One group-commit transaction, run whole on the writer connection's thread.

A batch is applied optimistically: ops check their input against the database *before* they
write anything, so an op that is rejected (unknown session, bad range) is simply skipped and
the rest of the batch goes on. Small writes are buffered per statement and flushed with one
``executemany`` each, and every session's ``next_seq`` / ``updated_at`` is written once per
batch, not once per op.

If anything unexpected fails half-way (a constraint, bad text), the whole transaction is rolled
back and the batch is replayed with a SAVEPOINT around each op, so only the culprit fails.
Errors about the database itself (disk full, I/O, corruption) fail the whole batch; a failed
COMMIT fails every op of the batch, and nothing of it is visible.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import InvalidArgument, SessionNotFound
from .._writer import Outcome
from ._apply import APPLY
from ._errors import is_busy, is_environmental, map_error

if TYPE_CHECKING:
    from .._ops import WriteOp

_BUSY_RETRIES = 5
# Parameters per prefetch query (SQLite's limit is 999 on old builds).
_PREFETCH_SIZES = (8, 32, 128, 512)
_PREFETCH_SQL = {
    size: "SELECT session_id, next_seq FROM session_state WHERE session_id IN "
    f"({','.join('?' * size)})"
    for size in _PREFETCH_SIZES
}

_UPDATE_NEXT_SEQ = "UPDATE session_state SET next_seq = ? WHERE session_id = ?"
# A session already stamped with this millisecond is left alone: SQLite would rewrite its row
# and move its idx_sessions_updated entry anyway, two WAL pages of the ~6 a lone caller's
# append writes (measured: 4.85 -> 4.3 WAL frames per append, appends ~240 µs apart).
# Parameters: (now, session_id, now). Plain "?" marks: numbered ones bound from a sequence are
# deprecated in Python 3.12 and refused from 3.14.
_UPDATE_TOUCHED = "UPDATE sessions SET updated_at = ? WHERE session_id = ? AND updated_at <> ?"
#: Sessions whose next_seq is remembered between batches; past this the memory starts over.
_KNOWN_SEQS_LIMIT = 4096


class KnownSeqs:
    """``next_seq`` per session as of the writer's last commit, kept between batches.

    Valid only while no other connection has committed: ``PRAGMA data_version`` tells, at the
    start of each batch, whether one has (another process or store, a reference writer). A
    failed batch forgets everything, since its cached values were never committed.
    """

    __slots__ = ("data_version", "seqs")

    def __init__(self) -> None:
        self.seqs: dict[str, int | None] = {}
        self.data_version = -1

    def revalidate(self, conn: sqlite3.Connection) -> None:
        version: int = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.data_version or len(self.seqs) > _KNOWN_SEQS_LIMIT:
            self.seqs.clear()
            self.data_version = version


class Batch:
    """What ops see of the open transaction: the connection, the batch's clock, and caches."""

    __slots__ = (
        "_buffers",
        "_dirty_seq",
        "_next_seq",
        "_touched",
        "conn",
        "max_spawn_depth",
        "now",
    )

    def __init__(
        self, conn: sqlite3.Connection, now: int, max_spawn_depth: int, known: KnownSeqs
    ) -> None:
        self.conn = conn
        self.now = now
        self.max_spawn_depth = max_spawn_depth
        # session_id -> next free seq, or None when the session does not exist.
        self._next_seq = known.seqs
        self._dirty_seq: set[str] = set()
        self._touched: set[str] = set()
        self._buffers: dict[str, list[tuple[Any, ...]]] = {}

    def _lookup(self, session_id: str) -> int | None:
        try:
            return self._next_seq[session_id]
        except KeyError:
            r = self.conn.execute(
                "SELECT next_seq FROM session_state WHERE session_id = ?", (session_id,)
            ).fetchone()
            found: int | None = None if r is None else r[0]
            self._next_seq[session_id] = found
            return found

    def prefetch(self, session_ids: Iterable[str]) -> None:
        """Load the ``next_seq`` of many sessions in a few queries instead of one per op."""
        wanted = list({sid for sid in session_ids if sid not in self._next_seq})
        if len(wanted) < 2:
            return  # a lone session is looked up lazily by the simpler, cached query
        for start in range(0, len(wanted), _PREFETCH_SIZES[-1]):
            chunk = wanted[start : start + _PREFETCH_SIZES[-1]]
            # Pad to a few fixed sizes so sqlite3's statement cache keeps every variant.
            size = next(n for n in _PREFETCH_SIZES if n >= len(chunk))
            padded = chunk + [chunk[-1]] * (size - len(chunk))
            found = dict(self.conn.execute(_PREFETCH_SQL[size], padded).fetchall())
            for sid in chunk:
                self._next_seq[sid] = found.get(sid)

    def require(self, session_id: str) -> None:
        """Raise :class:`SessionNotFound` unless the session exists."""
        if self._lookup(session_id) is None:
            raise SessionNotFound(session_id)

    def peek_next_seq(self, session_id: str) -> int:
        seq = self._lookup(session_id)
        if seq is None:
            raise SessionNotFound(session_id)
        return seq

    def take_seqs(self, session_id: str, count: int = 1) -> int:
        """Allocate *count* consecutive seqs and return the first."""
        first = self.peek_next_seq(session_id)
        self._next_seq[session_id] = first + count
        self._dirty_seq.add(session_id)
        return first

    def created(self, session_id: str) -> None:
        self._next_seq[session_id] = 1

    def forget(self, session_ids: Sequence[str]) -> None:
        for sid in session_ids:
            self._next_seq[sid] = None
            self._dirty_seq.discard(sid)
            self._touched.discard(sid)

    def reload(self, session_ids: Sequence[str]) -> None:
        """Forget what is cached about sessions an op rewrote wholesale (fork, import)."""
        for sid in session_ids:
            self._next_seq.pop(sid, None)
            self._dirty_seq.discard(sid)

    def touch(self, session_id: str) -> None:
        self._touched.add(session_id)

    def buffer(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue a write that commutes with every other buffered statement but its own kind."""
        try:
            self._buffers[sql].append(params)
        except KeyError:
            self._buffers[sql] = [params]

    def flush(self) -> None:
        """Write everything buffered. Ops that read what buffered writes touch call this first."""
        conn = self.conn
        if self._buffers:
            for sql, rows in self._buffers.items():
                conn.executemany(sql, rows)
            self._buffers = {}
        if self._dirty_seq:
            conn.executemany(
                _UPDATE_NEXT_SEQ, [(self._next_seq[sid], sid) for sid in self._dirty_seq]
            )
            self._dirty_seq = set()
        if self._touched:
            now = self.now
            conn.executemany(_UPDATE_TOUCHED, [(now, sid, now) for sid in self._touched])
            self._touched = set()

    def reset(self) -> None:
        """Drop caches and buffers after a rollback to a savepoint."""
        self._next_seq.clear()
        self._dirty_seq.clear()
        self._touched.clear()
        self._buffers = {}


def _apply_fast(batch: Batch, ops: Sequence[WriteOp]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for op in ops:
        try:
            outcomes.append((None, APPLY[type(op)](batch, op)))
        except InvalidArgument as exc:
            # Ops raise these before writing or buffering anything: nothing to undo.
            outcomes.append((exc, None))
    batch.flush()
    return outcomes


def _apply_isolated(batch: Batch, ops: Sequence[WriteOp]) -> list[Outcome]:
    conn = batch.conn
    outcomes: list[Outcome] = []
    for op in ops:
        conn.execute("SAVEPOINT op")
        try:
            value = APPLY[type(op)](batch, op)
            batch.flush()
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            batch.reset()
            if is_environmental(exc):
                raise
            outcomes.append((map_error(exc), None))
        else:
            conn.execute("RELEASE op")
            outcomes.append((None, value))
    return outcomes


def _transaction(
    conn: sqlite3.Connection, ops: Sequence[WriteOp], max_spawn_depth: int, known: KnownSeqs
) -> list[Outcome]:
    batch = Batch(conn, time.time_ns() // 1_000_000, max_spawn_depth, known)
    conn.execute("BEGIN IMMEDIATE")
    try:
        known.revalidate(conn)
        try:
            batch.prefetch(op.session_id for op in ops)
            outcomes = _apply_fast(batch, ops)
        except Exception as exc:
            if is_environmental(exc):
                raise
            conn.execute("ROLLBACK")
            batch.reset()
            conn.execute("BEGIN IMMEDIATE")
            outcomes = _apply_isolated(batch, ops)
        conn.execute("COMMIT")
    except BaseException:
        batch.reset()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def run_batch(
    conn: sqlite3.Connection, ops: Sequence[WriteOp], max_spawn_depth: int, known: KnownSeqs
) -> list[Outcome]:
    """Apply *ops* in one transaction and report each op's outcome. Never raises."""
    attempt = 0
    while True:
        try:
            return _transaction(conn, ops, max_spawn_depth, known)
        except Exception as exc:
            # busy_timeout already waited; another process holds the write lock for long.
            if is_busy(exc) and attempt < _BUSY_RETRIES:
                attempt += 1
                time.sleep(0.01 * attempt)
                continue
            # One error object per caller: a shared one would collect every caller's
            # traceback as each of them re-raises it.
            return [(map_error(exc), None) for _ in ops]
