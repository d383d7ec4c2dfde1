"""The SQLite writer: a whole batch runs as one callable on the connection's thread."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time

import aiosqlite

from .._ops import WriteOp
from .._writer import Writer
from . import _checkpointer, _connection
from ._batch import KnownSeqs, run_batch
from ._checkpointer import Checkpointer


class SqliteWriter(Writer):
    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: str,
        *,
        max_batch: int,
        max_queue: int,
        max_spawn_depth: int,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        super().__init__(
            path, max_batch=max_batch, max_queue=max_queue, max_spawn_depth=max_spawn_depth
        )
        self._conn = conn
        self._checkpointer = checkpointer
        self._known_seqs = KnownSeqs()  # touched only on the connection thread

    async def _commit(self, batch: list[WriteOp]) -> None:
        loop = asyncio.get_running_loop()
        # Resolved with the batch's last acknowledged caller, not by a future of aiosqlite's:
        # one wake-up of the loop per batch, and the callers' next writes are queued before
        # this task takes the next batch.
        done: asyncio.Future[None] = loop.create_future()
        restart = self._checkpointer is not None and self._checkpointer.take_restart()
        _connection.post(self._conn, self._run_and_deliver, loop, batch, restart, done)
        try:
            await done
        except BaseException as exc:
            self._lost(batch, exc)
            raise
        if self._checkpointer is not None:
            self._checkpointer.committed(len(batch))

    def _run_and_deliver(
        self,
        conn: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        batch: list[WriteOp],
        restart: bool,
        done: asyncio.Future[None],
    ) -> None:
        """On the connection thread: commit the batch, then hand the outcomes straight to the
        loop, where :meth:`_deliver` acknowledges the callers and then resumes the writer."""
        started = time.perf_counter()
        try:
            outcomes = run_batch(conn, batch, self._max_spawn_depth, self._known_seqs)
        except BaseException as exc:  # run_batch handles every error it knows; a bug must
            outcomes = [(exc, None) for _ in batch]  # still reach the callers, not hang them
        try:
            loop.call_soon_threadsafe(
                self._deliver, batch, outcomes, time.perf_counter() - started, done
            )
        except RuntimeError:
            return  # the loop is closed: nobody is left to tell
        if restart and self._checkpointer is not None:
            # After the callers are acknowledged; only the next batch waits for it.
            try:
                _checkpointer.restart(conn)
            finally:
                # Whatever happened, the checkpointer must not wait for it forever.
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    loop.call_soon_threadsafe(self._checkpointer.restarted)
