"""The PostgreSQL writer: each batch is one transaction on a dedicated connection, and the
connection is replaced when it drops.

What a caller learns when the connection drops under its batch:

* before COMMIT was sent — nothing of the batch committed: it is run again, whole, on a new
  connection;
* during COMMIT — the outcome is unknown to the client. The batch wrote its id into
  ``batches`` in its own transaction, so after reconnecting one lookup tells: committed → the
  callers get their results; not committed → the batch runs again. Never a duplicate, never a
  silent loss;
* no connection can be had for :data:`RECONNECT_SECONDS` — every op of the batch fails with
  :class:`DatabaseError` (``outcome_unknown`` when COMMIT had been sent), and the next batch
  tries again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import DatabaseError
from .._ops import WriteOp
from .._writer import Outcome, Writer
from ._batch import batch_committed, run_batch
from ._errors import ConnectionLost, is_connection_lost

logger = logging.getLogger("power_store")

#: How long a batch keeps trying to reconnect before its callers get an error.
RECONNECT_SECONDS = 30.0
#: First pause between connection attempts; it doubles up to :data:`_MAX_PAUSE`.
_FIRST_PAUSE = 0.05
_MAX_PAUSE = 2.0


class PostgresWriter(Writer):
    def __init__(
        self,
        conn: Any,
        connect: Callable[[], Awaitable[Any]],
        schema: str,
        channel: str,
        location: str,
        *,
        max_batch: int,
        max_queue: int,
        max_spawn_depth: int,
    ) -> None:
        super().__init__(
            location, max_batch=max_batch, max_queue=max_queue, max_spawn_depth=max_spawn_depth
        )
        self._conn: Any = conn
        self._connect = connect
        self._schema = schema
        #: The NOTIFY channel every batch of this schema signals on.
        self.channel = channel
        #: Connections replaced after they dropped.
        self.reconnects = 0

    @property
    def backend_pid(self) -> int | None:
        """The server process of the writer's connection (NOTIFYs it sent carry it)."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else int(conn.get_server_pid())

    async def _commit(self, batch: list[WriteOp]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        try:
            outcomes = await self._attempt(batch)
            self._deliver(batch, outcomes, time.perf_counter() - started, done)
            await done
        except BaseException as exc:
            self._lost(batch, exc)
            raise

    async def _attempt(self, batch: list[WriteOp]) -> list[Outcome]:
        batch_id = secrets.token_hex(16)
        deadline = time.monotonic() + RECONNECT_SECONDS
        # What the ops return if a COMMIT whose answer was lost did land.
        in_doubt: list[Outcome] | None = None
        while True:
            try:
                conn = await self._connection(deadline)
                if in_doubt is not None:
                    if await batch_committed(conn, self._schema, batch_id):
                        return in_doubt
                    in_doubt = None  # it did not: run the batch again
                return await run_batch(
                    conn,
                    self._schema,
                    batch,
                    max_spawn_depth=self._max_spawn_depth,
                    batch_id=batch_id,
                    channel=self.channel,
                )
            except ConnectionLost as lost:
                logger.warning("power_store lost its PostgreSQL writer connection: %s", lost)
                await self._discard()
                if lost.outcomes is not None:
                    in_doubt = lost.outcomes
            except _Unreachable as exc:
                why = (
                    "not written"
                    if in_doubt is None
                    else "the outcome is unknown (COMMIT was sent)"
                )
                return [
                    (DatabaseError(f"PostgreSQL unreachable, {why}: {exc.__cause__}"), None)
                    for _ in batch
                ]
            except Exception as exc:
                if not is_connection_lost(exc):  # batch_committed failing otherwise: a bug
                    raise
                await self._discard()

    async def _connection(self, deadline: float) -> Any:
        """The writer's connection, reconnecting with backoff until *deadline*."""
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        pause = _FIRST_PAUSE
        while True:
            try:
                self._conn = await self._connect()
                self.reconnects += 1
                return self._conn
            except Exception as exc:
                if not is_connection_lost(exc) or time.monotonic() + pause > deadline:
                    raise _Unreachable from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def aclose_connection(self) -> None:
        """Close the connection once the writer task has stopped."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()


class _Unreachable(Exception):
    """No connection could be had before the batch's deadline (the cause says why)."""
