"""Background WAL checkpoints, on their own connection and thread.

SQLite normally checkpoints inside the COMMIT that pushes the WAL past 1,000 pages, and with
``synchronous=NORMAL`` a checkpoint fsyncs twice: measured, that was 34 µs of the 44 µs each
append paid for its commit. Here the writer's connection never checkpoints
(``wal_autocheckpoint=0``); after commits it pokes this task, which runs a PASSIVE checkpoint on
a separate connection (so the fsyncs happen off the writer's thread) and, if the WAL still grew
past a bound because writes never paused, a RESTART checkpoint that briefly holds new writes so
the log can start over.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import aiosqlite

from . import _connection

logger = logging.getLogger("power_store")

#: WAL frames (pages) after which a checkpoint also restarts the log, bounding the -wal file
#: (16,384 frames of 4 KiB = 64 MiB).
RESTART_FRAMES = 16_384


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, int]:
    _, log_frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if log_frames >= RESTART_FRAMES:
        _, log_frames, done = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    return log_frames, done


class Checkpointer:
    def __init__(self, conn: aiosqlite.Connection, *, pause: float) -> None:
        self._conn = conn
        self._pause = pause
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.checkpoints = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="power_store-checkpointer"
        )

    def notify(self) -> None:
        """Called by the writer after each commit; cheap when a checkpoint is already due."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await _connection.run(self._conn, _checkpoint)
                self.checkpoints += 1
            except sqlite3.Error as exc:
                # A busy or failed pass is retried on the next poke; the data is safe in the WAL.
                logger.debug("power_store checkpoint skipped: %r", exc)
            # Let commits accumulate so one pass copies many of them.
            await asyncio.sleep(self._pause)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        await self._conn.close()
