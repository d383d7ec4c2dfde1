"""A live feed of a session's messages as they commit.

How a watcher learns that something new may be there:

* **writes through this store** — the writer calls :meth:`WatchHub.on_commit` after each
  committed batch; it sets the :class:`asyncio.Event` of every watcher waiting on a session the
  batch wrote to. With no watcher waiting that is one dict truth test per batch.
* **writes by other processes or hosts** — while anyone waits, one task per store runs the
  backend's change feed (:meth:`Backend.change_feed`): SQLite polls ``PRAGMA data_version``,
  PostgreSQL listens for the NOTIFY every batch sends. It wakes the watchers concerned.

What a watcher then reads comes from the database, a page at a time, after the last seq it
handed out. The feed is therefore exactly-once and in order (seqs are allocated inside the
write transaction, so within a session commit order is seq order, across processes too), and
nothing is buffered for a slow consumer: it simply reads further behind, and catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import Any

from ._errors import SessionNotFound, StoreClosed
from ._iterators import PagedIterator
from ._models import MessageRow
from ._ops import CloseSession, ImportSessions, Prune, WriteOp

#: Ops that may delete sessions: after one commits, every watcher checks its session.
_ENDS_SESSIONS = (CloseSession, Prune, ImportSessions)
#: Messages read per page; bounds a watcher's memory whatever its backlog.
PAGE_SIZE = 500


class WatchHub:
    """The watchers of one store, and the task following writes made elsewhere."""

    def __init__(self, feed: Callable[[WatchHub], Coroutine[Any, Any, None] | None]) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._feed = feed
        #: Every watch not yet garbage, waiting or not: a replace must reach idle ones too.
        self.watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        #: Sessions an import is replacing now, with what resolves when it is over.
        self._replacing: dict[str, list[asyncio.Future[None]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def waiting(self) -> bool:
        """Whether any watcher waits (the change feed runs only while one does)."""
        return bool(self._waiting)

    @property
    def watchers(self) -> int:
        return sum(len(events) for events in self._waiting.values())

    def register(self, session_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiting.setdefault(session_id, set()).add(event)
        if not self.closed and (self._poller is None or self._poller.done()):
            feed = self._feed(self)
            if feed is not None:
                self._poller = asyncio.get_running_loop().create_task(
                    feed, name="power_store-watch-feed"
                )
        return event

    def unregister(self, session_id: str, event: asyncio.Event) -> None:
        events = self._waiting.get(session_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiting[session_id]

    @contextlib.contextmanager
    def replacing(self, session_ids: list[str]) -> Iterator[None]:
        """Around an import that replaces *session_ids*.

        A watch that has begun reading one of them ends (handing out only what it had read):
        its ``last_seq`` means nothing in the new rows, whose seqs start again. One that begins
        meanwhile waits for the import to be over, then follows whichever rows are there.
        Marked before the import is even queued, so no read can see the new rows first.
        """
        ids = set(session_ids)
        for watch in list(self.watches):
            if watch.session_id in ids:
                watch.replaced()
        over: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for sid in ids:
            self._replacing.setdefault(sid, []).append(over)
        try:
            yield
        finally:
            for sid in ids:
                pending = self._replacing[sid]
                pending.remove(over)
                if not pending:
                    del self._replacing[sid]
            over.set_result(None)

    async def replaced(self, session_id: str) -> None:
        """Return once no import is replacing *session_id*."""
        while pending := self._replacing.get(session_id):
            await pending[-1]

    def wake_all(self) -> None:
        for events in self._waiting.values():
            for event in events:
                event.set()

    def wake(self, session_ids: Iterable[str]) -> None:
        waiting = self._waiting
        for sid in session_ids:
            for event in waiting.get(sid, ()):
                event.set()

    def on_commit(self, batch: list[WriteOp]) -> None:
        """Runs on the writer's path after every batch: keep it cheap."""
        waiting = self._waiting
        if not waiting:
            return
        for op in batch:
            if isinstance(op, _ENDS_SESSIONS):
                self.wake_all()
                return
            events = waiting.get(op.session_id)
            if events:
                for event in events:
                    event.set()

    async def close(self) -> None:
        """End every watch: they wake, see the store closing, and stop."""
        self.closed = True
        self.wake_all()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


class Watch(PagedIterator[MessageRow]):
    """What :meth:`AsyncSessionStore.watch` returns: ``async for message in watch``."""

    def __init__(
        self,
        hub: WatchHub,
        fetch: Callable[[str, int, int], Awaitable[tuple[bool, list[MessageRow]]]],
        session_id: str,
        after_seq: int,
    ) -> None:
        super().__init__()
        self._hub = hub
        self._fetch = fetch
        self.session_id = session_id
        #: The seq of the last message handed out.
        self.last_seq = after_seq
        self._begun = False  # a read was issued
        self._started = False  # a read found the session
        self._ended = False
        #: What wakes this watch while it waits: set by commits, the poller, and stop().
        self._event: asyncio.Event | None = None
        hub.watches.add(self)

    async def next_page(self) -> list[MessageRow] | None:
        while not (self.stopped or self._ended):
            if not self._begun:
                await self._hub.replaced(self.session_id)
                self._begun = True
            # Register before reading: a commit landing between the read and the wait still
            # finds the event, so no wake-up is lost.
            event = self._event = self._hub.register(self.session_id)
            try:
                exists, rows = await self._fetch(self.session_id, self.last_seq, PAGE_SIZE)
                if self.stopped or self._ended:
                    break
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
                self._event = None
                self._hub.unregister(self.session_id, event)
        self._ended = True
        return None

    def stop(self) -> None:
        super().stop()
        self.replaced()

    def replaced(self) -> None:
        """End after what was already read (see :meth:`WatchHub.replacing`), waking a wait."""
        if self._begun:
            self._ended = True
            if self._event is not None:
                self._event.set()
