"""The PostgreSQL writer: each batch is one transaction on a dedicated connection, and the
connection is replaced when it drops.

What a caller learns when the connection drops under its batch:

* before COMMIT was sent — nothing of the batch committed;
* during COMMIT (or during the one statement of an appends-only batch) — the outcome is
  unknown to the client.

Either way, every batch wrote its id into ``batches`` in its own transaction, so after
reconnecting one lookup tells: committed → the callers get their results (known before COMMIT
was sent, or the seqs the appends statement kept in the row); not committed → the batch runs
again. Never a duplicate, never a silent loss. And:

* no connection can be had for :data:`RECONNECT_SECONDS` — every op of the batch fails with
  :class:`DatabaseError` (saying "outcome unknown" when it may have committed), and the next batch
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
from . import _appends
from ._batch import notify_payload, run_batch
from ._errors import ConnectionLost, is_connection_lost

logger = logging.getLogger("power_store")

#: How often the writer deletes old rows of ``batches`` (after a batch, between two batches).
FORGET_EVERY_SECONDS = 60.0
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
        self._forgotten_at = time.monotonic()

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
        if time.monotonic() - self._forgotten_at >= FORGET_EVERY_SECONDS:
            await self._forget_old_batches()

    async def _forget_old_batches(self) -> None:
        self._forgotten_at = time.monotonic()
        if self._conn is None:
            return
        try:
            await _appends.forget_old_batches(self._conn, self._schema)
        except Exception as exc:  # the next batch finds out about the connection
            logger.warning("power_store could not delete old batch ids: %r", exc)

    async def _attempt(self, batch: list[WriteOp]) -> list[Outcome]:
        batch_id = secrets.token_hex(16)
        deadline = time.monotonic() + RECONNECT_SECONDS
        # Set when the connection dropped under the batch: it may have committed. With the
        # outcomes it would have, when they were known before COMMIT was sent.
        in_doubt = False
        known: list[Outcome] | None = None
        while True:
            try:
                conn = await self._connection(deadline)
                if in_doubt:
                    landed, seqs = await _appends.committed(conn, self._schema, batch_id)
                    if landed:
                        return _appends.decode_outcome(batch, seqs) if known is None else known
                    in_doubt, known = False, None  # it did not: run the batch again
                return await self._apply(conn, batch, batch_id)
            except ConnectionLost as lost:
                logger.warning("power_store lost its PostgreSQL writer connection: %s", lost)
                await self._discard()
                in_doubt, known = True, lost.outcomes
            except _Unreachable as exc:
                why = (
                    "the outcome is unknown (it may have committed)" if in_doubt else "not written"
                )
                return [
                    (DatabaseError(f"PostgreSQL unreachable, {why}: {exc.__cause__}"), None)
                    for _ in batch
                ]
            except Exception as exc:
                if not is_connection_lost(exc):  # the lookup failing otherwise: a bug
                    raise
                await self._discard()

    async def _apply(self, conn: Any, batch: list[WriteOp], batch_id: str) -> list[Outcome]:
        if _appends.eligible(batch):
            try:
                return await _appends.run_appends(
                    conn,
                    self._schema,
                    batch,
                    now=time.time_ns() // 1_000_000,
                    batch_id=batch_id,
                    channel=self.channel,
                    # Every op counted as written: a wake-up for an unknown session is harmless.
                    payload=notify_payload(batch, [(None, None)] * len(batch)) or "*",
                )
            except Exception as exc:
                if is_connection_lost(exc) or conn.is_closed():
                    # Run in its own implicit transaction, the statement may have committed.
                    raise ConnectionLost(
                        f"connection lost during batch {batch_id}: {exc}", batch_id=batch_id
                    ) from exc
                # It failed whole, so nothing was written: the general path finds the culprit.
        return await run_batch(
            conn,
            self._schema,
            batch,
            max_spawn_depth=self._max_spawn_depth,
            batch_id=batch_id,
            channel=self.channel,
        )

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
