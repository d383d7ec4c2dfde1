"""The writer: one task that drains a bounded queue of ops into group-commit batches.

Cancellation rule — an op whose caller is cancelled *before the writer takes it into a batch*
is dropped and never written. Once taken, it is committed (or fails) whole with its batch and
only its result is thrown away. Either way no write is ever torn, and nothing a caller does can
stop the writer task.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

import aiosqlite

from . import _connection
from ._batch import Outcome, run_batch
from ._errors import StoreClosed
from ._ops import WriteOp

logger = logging.getLogger("power_store")


class _Stop(WriteOp):
    """Queued by close() behind every op already submitted."""

    __slots__ = ()


class Writer:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: str,
        *,
        max_batch: int,
        max_queue: int,
        max_spawn_depth: int,
    ) -> None:
        self._conn = conn
        self._path = path
        self._max_batch = max_batch
        self._max_spawn_depth = max_spawn_depth
        self._queue: asyncio.Queue[WriteOp] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.ops = 0
        self.max_batch_seen = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="power_store-writer")

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def submit(self, op: WriteOp) -> Any:
        """Queue *op* and wait until its batch has committed; return its result."""
        op.future = asyncio.get_running_loop().create_future()
        # put() waits while the queue is full: backpressure instead of unbounded memory.
        await self._queue.put(op)
        return await op.future

    async def close(self) -> None:
        """Let every op already queued commit, then stop the task."""
        if self._task is None:
            return
        stop = _Stop()
        stop.future = asyncio.get_running_loop().create_future()
        await self._queue.put(stop)
        await asyncio.shield(self._task)

    def _take_batch(self, first: WriteOp) -> tuple[list[WriteOp], bool]:
        """Take *first* and whatever is queued behind it; say whether close() was reached."""
        taken: list[WriteOp] = []
        op: WriteOp | None = first
        queue = self._queue
        while op is not None:
            if isinstance(op, _Stop):
                return taken, True
            # The cancellation rule's cut-off: an op already cancelled now is dropped unwritten.
            if not op.future.done():
                taken.append(op)
            op = queue.get_nowait() if len(taken) < self._max_batch and queue.qsize() else None
        return taken, False

    async def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                batch, stopping = self._take_batch(await self._queue.get())
                if batch:
                    await self._commit(batch)
        finally:
            # A caller that squeezed in behind close(), or the loop shutting down: nobody may be
            # left waiting on a future that will never be resolved.
            closed = StoreClosed(self._path)
            while not self._queue.empty():
                op = self._queue.get_nowait()
                if not op.future.done():
                    op.future.set_exception(closed)

    async def _commit(self, batch: list[WriteOp]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await _connection.run(self._conn, self._run_and_deliver, loop, batch)
        except BaseException as exc:
            # _run_and_deliver never raises; this is the connection itself gone, or the loop
            # shutting down while the batch runs on (its outcome is then unknown to us).
            logger.error("power_store writer lost a batch of %d ops: %r", len(batch), exc)
            failure = StoreClosed(self._path, "broken")
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.ops += len(batch)
        self.max_batch_seen = max(self.max_batch_seen, len(batch))

    def _run_and_deliver(
        self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop, batch: list[WriteOp]
    ) -> None:
        """On the connection thread: commit the batch, then hand the outcomes straight to the
        loop. Resolving callers from here, rather than after the writer task wakes up, saves
        every caller one event-loop iteration."""
        outcomes = run_batch(conn, batch, self._max_spawn_depth)
        loop.call_soon_threadsafe(_deliver, batch, outcomes)


def _deliver(batch: list[WriteOp], outcomes: list[Outcome]) -> None:
    for op, (error, value) in zip(batch, outcomes, strict=True):
        if op.future.done():
            continue  # its caller was cancelled after the cut-off; the write stands
        if error is None:
            op.future.set_result(value)
        else:
            op.future.set_exception(error)
