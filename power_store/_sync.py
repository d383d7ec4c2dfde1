"""SessionStore: the synchronous facade. It runs an AsyncSessionStore on a private event loop
in a daemon thread (an anyio blocking portal) and forwards each call to it."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._bridge import on_loop
from ._errors import FacadeMisuse, StoreClosed
from ._iterators import BlockingIterator, PagedIterator
from ._models import DEFAULT_DB_PATH
from ._sink import BlockingSink, Sink
from ._store import AsyncSessionStore

P = ParamSpec("P")
T = TypeVar("T")


def _delegate(
    method: Callable[Concatenate[AsyncSessionStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[SessionStore, P], T]:
    """Make the blocking twin of an AsyncSessionStore method: same name, arguments and docs."""

    run = cast(Callable[..., Coroutine[Any, Any, T]], method)

    @functools.wraps(method)
    def call(self: SessionStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        store, loop = self._target()
        # Straight onto the portal's loop: measured ~80 µs cheaper per call than portal.call,
        # which also starts a task group and cancel scope for every call.
        coro = run(store, *map(_read_here, args), **{k: _read_here(v) for k, v in kwargs.items()})
        return on_loop(loop, coro, store.path)

    return call


def _read_here(value: Any) -> Any:
    """An iterator argument, read to the end in the calling thread.

    The store's loop thread must never run the caller's iterator: one that calls back into
    this store (``store.import_session(store.export_session(sid))``) would wait for that very
    thread forever, and a file being read would block every other caller's writes.
    """
    return list(value) if isinstance(value, Iterator) else value


def _delegate_iter(
    method: Callable[Concatenate[AsyncSessionStore, P], PagedIterator[T]],
) -> Callable[Concatenate[SessionStore, P], BlockingIterator[T]]:
    """The blocking twin of a method returning an async iterator: an iterator pulling whole
    pages from the loop (one hop per page, not per item)."""

    @functools.wraps(method)
    def call(self: SessionStore, /, *args: P.args, **kwargs: P.kwargs) -> BlockingIterator[T]:
        store, loop = self._target()
        pager = on_loop(loop, _call_async(method, store, *args, **kwargs), store.path)
        return BlockingIterator(loop, pager, store.path)

    return call


def _delegate_sink(
    method: Callable[[AsyncSessionStore, str], Sink],
) -> Callable[[SessionStore, str], BlockingSink]:
    @functools.wraps(method)
    def call(self: SessionStore, session_id: str) -> BlockingSink:
        store, loop = self._target()
        sink = on_loop(loop, _call_async(method, store, session_id), store.path)
        return BlockingSink(sink, loop)

    return call


class SessionStore:
    """The session store for synchronous code; safe to call from any thread.

    Each call blocks until the async core answers. Calling from a thread that runs its own
    event loop works (the core runs on another thread), but it blocks that loop for the call:
    async code should use :class:`AsyncSessionStore`.
    """

    def __init__(self, store: AsyncSessionStore, portal: BlockingPortal, stop_portal: Any) -> None:
        # Use SessionStore.open().
        self._store = store
        self._portal = portal
        self._stop_portal = stop_portal
        self._pid = os.getpid()
        self._loop_thread = portal.call(threading.get_ident)
        self._loop = portal.call(asyncio.get_running_loop)
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    @property
    def path(self) -> str:
        """The file path, ``":memory:"``, or the PostgreSQL DSN without its password."""
        return self._store.path

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        return self._store.backend

    @classmethod
    def open(cls, path: str | os.PathLike[str] = DEFAULT_DB_PATH, **options: Any) -> SessionStore:
        """Open the database at *path*; the options are those of :meth:`AsyncSessionStore.open`."""
        portal_cm = start_blocking_portal(backend="asyncio")
        portal = portal_cm.__enter__()
        try:
            portal.call(_name_loop_thread)
            store = portal.call(_open_async, path, options)
        except BaseException as exc:
            portal_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return cls(store, portal, portal_cm.__exit__)

    def close(self) -> None:
        """Close the store (queued writes commit first) and stop its loop thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        if os.getpid() != self._pid:
            return  # the loop thread does not exist in a forked child; nothing to stop
        self._check_thread()
        try:
            self._portal.call(self._store.close)
        finally:
            with contextlib.suppress(Exception):
                self._stop_portal(None, None, None)

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SessionStore {self._store.path!r} {'closed' if self._closed else 'open'}>"

    def _check_thread(self) -> None:
        if threading.get_ident() == self._loop_thread:
            raise FacadeMisuse(
                "SessionStore was called from its own event-loop thread (from code running "
                "inside the store); await the AsyncSessionStore methods there instead"
            )

    def _target(self) -> tuple[AsyncSessionStore, asyncio.AbstractEventLoop]:
        if os.getpid() != self._pid:
            raise FacadeMisuse(
                f"SessionStore on {self._store.path!r} was opened in process {self._pid} and "
                "cannot be used in a forked child; open a new store in the child"
            )
        if self._closed:
            raise StoreClosed(self._store.path)
        self._check_thread()
        return self._store, self._loop

    create_session = _delegate(AsyncSessionStore.create_session)
    get_session = _delegate(AsyncSessionStore.get_session)
    list_children = _delegate(AsyncSessionStore.list_children)
    archive_session = _delegate(AsyncSessionStore.archive_session)
    close_session = _delegate(AsyncSessionStore.close_session)
    update_session_prompt = _delegate(AsyncSessionStore.update_session_prompt)
    append_message = _delegate(AsyncSessionStore.append_message)
    load_active_messages = _delegate(AsyncSessionStore.load_active_messages)
    load_all_messages = _delegate(AsyncSessionStore.load_all_messages)
    get_message = _delegate(AsyncSessionStore.get_message)
    record_compaction = _delegate(AsyncSessionStore.record_compaction)
    list_compactions = _delegate(AsyncSessionStore.list_compactions)
    get_state = _delegate(AsyncSessionStore.get_state)
    set_round_index = _delegate(AsyncSessionStore.set_round_index)
    set_pending = _delegate(AsyncSessionStore.set_pending)
    record_usage = _delegate(AsyncSessionStore.record_usage)
    # ── beyond the reference ──
    list_sessions = _delegate(AsyncSessionStore.list_sessions)
    count_sessions = _delegate(AsyncSessionStore.count_sessions)
    load_messages = _delegate(AsyncSessionStore.load_messages)
    append_messages = _delegate(AsyncSessionStore.append_messages)
    usage_totals = _delegate(AsyncSessionStore.usage_totals)
    fork_session = _delegate(AsyncSessionStore.fork_session)
    get_lineage = _delegate(AsyncSessionStore.get_lineage)
    watch = _delegate_iter(AsyncSessionStore.watch)
    prune = _delegate(AsyncSessionStore.prune)
    checkpoint = _delegate(AsyncSessionStore.checkpoint)
    vacuum = _delegate(AsyncSessionStore.vacuum)
    backup = _delegate(AsyncSessionStore.backup)
    export_session = _delegate_iter(AsyncSessionStore.export_session)
    import_session = _delegate(AsyncSessionStore.import_session)
    stats = _delegate(AsyncSessionStore.stats)
    sink = _delegate_sink(AsyncSessionStore.sink)


async def _call_async(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # Run a plain method on the store's loop: what it builds belongs to that loop.
    return fn(*args, **kwargs)


def _name_loop_thread() -> None:
    threading.current_thread().name = "power_store-loop"


async def _open_async(path: str | os.PathLike[str], options: dict[str, Any]) -> AsyncSessionStore:
    return await AsyncSessionStore.open(path, **options)
