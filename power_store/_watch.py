"""A live feed of a session's messages as they commit.

How a watcher learns that something new may be there:

* **writes through this store** — the writer calls :meth:`WatchHub.on_commit` after each
  committed batch; it sets the :class:`asyncio.Event` of every watcher waiting on a session the
  batch wrote to. With no watcher waiting that is one dict truth test per batch.
* **writes by other processes** — while anyone waits, one task per store polls
  ``PRAGMA data_version`` on the writer connection (it changes only when *another* connection
  commits) every ``watch_poll_interval`` seconds and wakes every watcher when it moves.

What a watcher then reads comes from the database, a page at a time, after the last seq it
handed out. The feed is therefore exactly-once and in order (seqs are allocated inside the
write transaction, so within a session commit order is seq order, across processes too), and
nothing is buffered for a slow consumer: it simply reads further behind, and catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import SessionNotFound, StoreClosed
from ._export import ImportSessions
from ._iterators import PagedIterator
from ._maintenance import Prune
from ._models import MessageRow
from ._ops import CloseSession, WriteOp
from ._queries import MESSAGE_COLUMNS, message_row
from ._snapshot import snapshot

logger = logging.getLogger("power_store")

#: Ops that may delete sessions: after one commits, every watcher checks its session.
_ENDS_SESSIONS = (CloseSession, Prune, ImportSessions)
#: Messages read per page; bounds a watcher's memory whatever its backlog.
PAGE_SIZE = 500


class WatchHub:
    """The watchers of one store, and its cross-process poller."""

    def __init__(self, poll: Callable[[], Awaitable[int]] | None, interval: float) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._poll = poll
        self._interval = interval
        self._poller: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def watchers(self) -> int:
        return sum(len(events) for events in self._waiting.values())

    def register(self, session_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiting.setdefault(session_id, set()).add(event)
        if self._poll is not None and (self._poller is None or self._poller.done()):
            self._poller = asyncio.get_running_loop().create_task(
                self._run_poller(self._poll), name="power_store-watch-poller"
            )
        return event

    def unregister(self, session_id: str, event: asyncio.Event) -> None:
        events = self._waiting.get(session_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiting[session_id]

    def _wake_all(self) -> None:
        for events in self._waiting.values():
            for event in events:
                event.set()

    def on_commit(self, batch: list[WriteOp]) -> None:
        """Runs on the writer's path after every batch: keep it cheap."""
        waiting = self._waiting
        if not waiting:
            return
        for op in batch:
            if isinstance(op, _ENDS_SESSIONS):
                self._wake_all()
                return
            events = waiting.get(op.session_id)
            if events:
                for event in events:
                    event.set()

    async def _run_poller(self, poll: Callable[[], Awaitable[int]]) -> None:
        try:
            version = await poll()
            while self._waiting and not self.closed:
                await asyncio.sleep(self._interval)
                current = await poll()
                if current != version:
                    version = current
                    self._wake_all()
        except Exception as exc:
            # The store closing under us, or its connection failing: watchers still wake on
            # this store's own commits, and a new watcher starts a new poller.
            logger.debug("power_store watch poller stopped: %r", exc)

    async def close(self) -> None:
        """End every watch: they wake, see the store closing, and stop."""
        self.closed = True
        self._wake_all()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


def data_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA data_version").fetchone()[0]
    return version


def messages_after(
    conn: sqlite3.Connection, session_id: str, after_seq: int, limit: int
) -> tuple[bool, list[MessageRow]]:
    """Whether the session exists, and its messages past *after_seq* in seq order."""
    with snapshot(conn):
        exists = conn.execute(
            "SELECT 1 FROM session_state WHERE session_id = ?", (session_id,)
        ).fetchone()
        rows = conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (session_id, after_seq, limit),
        ).fetchall()
    return exists is not None, [message_row(r) for r in rows]


class Watch(PagedIterator[MessageRow]):
    """What :meth:`AsyncSessionStore.watch` returns: ``async for message in watch``."""

    def __init__(
        self,
        hub: WatchHub,
        read: Callable[..., Awaitable[Any]],
        session_id: str,
        after_seq: int,
    ) -> None:
        super().__init__()
        self._hub = hub
        self._read = read
        self.session_id = session_id
        #: The seq of the last message handed out.
        self.last_seq = after_seq
        self._started = False
        self._ended = False

    async def next_page(self) -> list[MessageRow] | None:
        while not self._ended:
            # Register before reading: a commit landing between the read and the wait still
            # finds the event, so no wake-up is lost.
            event = self._hub.register(self.session_id)
            try:
                found: tuple[bool, list[MessageRow]] = await self._read(
                    messages_after, self.session_id, self.last_seq, PAGE_SIZE
                )
                exists, rows = found
                if not exists:
                    if not self._started:
                        raise SessionNotFound(self.session_id)
                    break  # deleted while watched
                self._started = True
                if rows:
                    self.last_seq = rows[-1].seq
                    return rows
                if self._hub.closed:
                    break
                await event.wait()
            except StoreClosed:
                if not self._started:
                    raise
                break
            finally:
                self._hub.unregister(self.session_id, event)
        self._ended = True
        return None

    async def aclose(self) -> None:
        self._ended = True
