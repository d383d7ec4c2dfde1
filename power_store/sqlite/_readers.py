"""A small pool of read-only connections with first-come, first-served hand-off.

A released connection goes straight to the longest-waiting reader instead of back into a
shared queue: with ``asyncio.Queue`` the releasing coroutine can take it again before the
waiter it woke runs, which measured p99 436 ms against 21 ms for FIFO hand-off.

A connection that dies (closed under us, its thread gone) is replaced by a fresh one and the
read is retried once on it: reads have no side effects, and a pool that kept a dead slot would
fail one read in every *k* for the rest of the store's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite

from .._errors import StoreClosed
from . import _connection
from ._errors import map_error

T = TypeVar("T")

logger = logging.getLogger("power_store")


class ReaderPool:
    def __init__(
        self,
        connections: list[aiosqlite.Connection],
        path: str,
        *,
        owned: bool,
        reopen: Callable[[], Awaitable[aiosqlite.Connection]] | None = None,
    ) -> None:
        self._all = connections
        self._free = list(connections)
        self._waiters: deque[asyncio.Future[aiosqlite.Connection]] = deque()
        self._path = path
        # False when the pool borrows the writer connection (":memory:"), which it must not close.
        self._owned = owned
        # Opens a replacement for a dead connection; None when the pool does not own them.
        self._reopen = reopen
        self._closed = False
        self.waits = 0
        self.replaced = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        conn = await self._acquire()
        try:
            if not _connection.is_alive(conn):
                conn = await self._replace(conn)
            try:
                return await _connection.run(conn, fn, *args)
            except (ValueError, sqlite3.ProgrammingError) as exc:
                # aiosqlite says "Connection closed" with a ValueError; our queries are fixed
                # SQL, so a ProgrammingError means the sqlite3 connection itself was closed.
                if self._reopen is None or (
                    isinstance(exc, ValueError) and _connection.is_alive(conn)
                ):
                    raise
                conn = await self._replace(conn)
                return await _connection.run(conn, fn, *args)
        except sqlite3.Error as exc:
            raise map_error(exc) from exc
        finally:
            self._release(conn)

    async def _replace(self, dead: aiosqlite.Connection) -> aiosqlite.Connection:
        if self._reopen is None:
            raise StoreClosed(self._path, "broken (its read connection died)")
        logger.warning("power_store replaces a dead read connection on %r", self._path)
        with contextlib.suppress(Exception):
            await dead.close()
        fresh = await self._reopen()
        self._all[self._all.index(dead)] = fresh
        self.replaced += 1
        return fresh

    async def _acquire(self) -> aiosqlite.Connection:
        if self._closed:
            raise StoreClosed(self._path)
        if self._free:
            return self._free.pop()
        self.waits += 1
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn: aiosqlite.Connection = await waiter
            return conn
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection in the same instant we were cancelled: pass it on.
                self._release(waiter.result())
            elif waiter in self._waiters:
                # Not if _release (which skips cancelled waiters) or close() took it out
                # already: the caller must see its cancellation, never a ValueError.
                self._waiters.remove(waiter)
            raise

    def _release(self, conn: aiosqlite.Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._free.append(conn)

    async def close(self) -> None:
        """Refuse new reads, let running ones finish, then close every connection."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(StoreClosed(self._path))
        self._waiters.clear()
        while len(self._free) < len(self._all):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._free.append(await waiter)
        if self._owned:
            for conn in self._all:
                await conn.close()
