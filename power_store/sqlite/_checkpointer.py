"""WAL checkpoints, moved off the writer's commits.

Left to itself SQLite checkpoints inside the COMMIT that pushes the WAL past 1,000 pages, and a
checkpoint fsyncs twice: measured with 64 sessions appending, that was 34 µs of the 44 µs each
append paid for its commit. So the writer's connection never auto-checkpoints. Instead:

* every ``every_ops`` committed writes, this task runs a PASSIVE checkpoint on a connection and
  thread of its own: the copying and the fsyncs happen beside the writer, not in its way;
* a PASSIVE checkpoint never blocks the writer, so under steady writes it never catches up with
  the end of the log, and the log could grow without bound. Once the log passes
  :data:`RESTART_FRAMES`, the writer is asked (``take_restart``) to run a RESTART checkpoint on
  its own connection right after its next batch is acknowledged, and the log starts over from
  the beginning. Until it has, no pass runs: the restart hardly waits (below), so it would
  find the checkpoint lock taken and do nothing;
* a restart must wait for every reader to leave the log. It waits at most
  :data:`RESTART_WAIT_MS`, enough for a read, then gives up until the next request. With the
  store's ``busy_timeout`` it held the writer for all of it (5 s by default) on every attempt
  while a reader elsewhere kept an old snapshot (a long transaction in another process);
* such a reader also keeps SQLite from copying past its snapshot, so the pass's copy falls ever
  further behind the log. Past :data:`BLOCKED_LAG_FRAMES` of lag the restart is not asked for
  at all: it could only fail. The log grows until the reader lets go.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import aiosqlite

from . import _connection

logger = logging.getLogger("power_store")

#: Log length (in pages) after which the writer restarts the log: 4,096 pages of 4 KiB = 16 MiB.
RESTART_FRAMES = 4096
#: How long the writer's restart waits for readers to leave the log.
RESTART_WAIT_MS = 20
#: Frames a pass may leave uncopied (readers on recent snapshots) and still ask for a restart.
BLOCKED_LAG_FRAMES = RESTART_FRAMES // 2


def _passive(conn: sqlite3.Connection) -> tuple[int, int]:
    """One PASSIVE pass: the log's length, and how much of it is now in the database (frames)."""
    _, log_frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return log_frames, copied


def _wants_restart(log_frames: int, copied: int) -> bool:
    return log_frames >= RESTART_FRAMES and log_frames - copied <= BLOCKED_LAG_FRAMES


def restart(conn: sqlite3.Connection) -> None:
    """Run on the writer's connection between transactions; waits for readers only briefly."""
    (timeout_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS:d}")
    try:
        # Still busy then (a reader in the log), it copies what it can and leaves the log be:
        # the next request retries.
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    except sqlite3.Error as exc:
        logger.debug("power_store WAL restart skipped: %r", exc)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms):d}")


class Checkpointer:
    def __init__(self, conn: aiosqlite.Connection, *, every_ops: int) -> None:
        self._conn = conn
        self._every_ops = every_ops
        self._uncheckpointed = 0
        self._due = asyncio.Event()
        self._restart_due = False
        self._restarted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="power_store-checkpointer"
        )

    def committed(self, ops: int) -> None:
        """Called by the writer after each commit: a counter bump, nothing more."""
        self._uncheckpointed += ops
        if self._uncheckpointed >= self._every_ops:
            self._due.set()

    def take_restart(self) -> bool:
        """True once after a pass found the log too long; the writer then restarts it."""
        due, self._restart_due = self._restart_due, False
        return due

    def restarted(self) -> None:
        """Called on the loop once the writer's restart has run (or found the log busy)."""
        self._restarted.set()

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            self._uncheckpointed = 0
            try:
                log_frames, copied = await _connection.run(self._conn, _passive)
            except sqlite3.Error as exc:
                logger.debug("power_store checkpoint skipped: %r", exc)
                continue
            if _wants_restart(log_frames, copied):
                self._restarted.clear()
                self._restart_due = True
                await self._restarted.wait()  # no pass while the writer restarts (see above)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        await self._conn.close()
