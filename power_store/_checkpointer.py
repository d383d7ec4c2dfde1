"""WAL checkpoints, moved off the writer's commits.

Left to itself SQLite checkpoints inside the COMMIT that pushes the WAL past 1,000 pages, and a
checkpoint fsyncs twice: measured with 64 sessions appending, that was 34 µs of the 44 µs each
append paid for its commit. So the writer's connection never auto-checkpoints. Instead:

* every ``every_ops`` committed writes, this task runs a PASSIVE checkpoint on a connection and
  thread of its own: the copying and the fsyncs happen beside the writer, not in its way;
* a PASSIVE checkpoint never blocks the writer, so under steady writes it never catches up with
  the end of the log, and the log could grow without bound. Once the log passes
  :data:`RESTART_FRAMES`, the writer is asked (``take_restart``) to run a RESTART checkpoint on
  its own connection right after its next batch is acknowledged; most frames are copied by then,
  so that costs little, and the log starts over from the beginning.
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


def _passive(conn: sqlite3.Connection) -> int:
    log_frames: int = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    return log_frames


def restart(conn: sqlite3.Connection) -> None:
    """Run on the writer's connection between transactions."""
    try:
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    except sqlite3.Error as exc:
        # Busy (another process reading an old snapshot, say): the next request retries.
        logger.debug("power_store WAL restart skipped: %r", exc)


class Checkpointer:
    def __init__(self, conn: aiosqlite.Connection, *, every_ops: int) -> None:
        self._conn = conn
        self._every_ops = every_ops
        self._uncheckpointed = 0
        self._due = asyncio.Event()
        self._restart_due = False
        self._task: asyncio.Task[None] | None = None
        self.checkpoints = 0

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

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            self._uncheckpointed = 0
            try:
                log_frames = await _connection.run(self._conn, _passive)
            except sqlite3.Error as exc:
                logger.debug("power_store checkpoint skipped: %r", exc)
                continue
            self.checkpoints += 1
            if log_frames >= RESTART_FRAMES:
                self._restart_due = True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        await self._conn.close()
