"""Iterators that fetch a page at a time: async for the store, blocking for the facade.

The sync facade pulls whole pages from the store's loop (one loop hop per page, not per item),
which is why the async iterators here are built on ``next_page`` rather than being plain
async generators.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from ._bridge import on_loop
from ._errors import StoreClosed

T = TypeVar("T")


class PagedIterator(Generic[T]):
    """An async iterator over pages; subclasses implement :meth:`next_page`."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self.stopped = False

    async def next_page(self) -> list[T] | None:
        """The next non-empty page, or ``None`` at the end."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop early (on the loop's thread); subclasses also wake a waiting ``next_page``."""
        self.stopped = True
        self._items.clear()

    async def aclose(self) -> None:
        """Stop early: a consumer waiting in ``async for`` wakes, and the iteration ends."""
        self.stop()

    def __aiter__(self) -> PagedIterator[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            page = None if self.stopped else await self.next_page()
            if page is None or self.stopped:
                raise StopAsyncIteration
            self._items.extend(page)
        return self._items.popleft()


class ListPager(PagedIterator[T]):
    """A result that is read whole (one snapshot) and handed out as one page."""

    def __init__(self, fetch: Callable[[], Awaitable[list[T]]]) -> None:
        super().__init__()
        self._fetch: Callable[[], Awaitable[list[T]]] | None = fetch

    async def next_page(self) -> list[T] | None:
        if self._fetch is None:
            return None
        # Forgotten only once read: after a failed or cancelled read, iterating again retries
        # it instead of ending as if the result were empty.
        page = await self._fetch()
        self._fetch = None
        return page

    async def aclose(self) -> None:
        self._fetch = None


class BlockingIterator(Iterator[T]):
    """The sync facade's twin of *pager*: each ``next()`` that needs a page blocks for it.

    There is no finalizer, on purpose: the garbage collector may drop an abandoned iterator on
    any thread, the store's own loop thread included, where nothing may wait for that loop. A
    pager registers nothing between pages, so dropping it releases nothing.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, pager: PagedIterator[T], path: str) -> None:
        self._loop = loop
        self._pager = pager
        self._path = path
        self._items: deque[T] = deque()
        self._begun = False
        self._ended = False

    def __iter__(self) -> BlockingIterator[T]:
        return self

    def __next__(self) -> T:
        while not self._ended:
            if self._items:
                return self._items.popleft()
            try:
                page = on_loop(self._loop, self._pager.next_page(), self._path)
            except StoreClosed:
                # The store closed after the iteration began: it ends, as the async one does.
                if not self._begun:
                    raise
                page = None
            self._begun = True
            if page is None:
                self._ended = True
            else:
                self._items.extend(page)
        raise StopIteration

    def close(self) -> None:
        """Stop early, from any thread: a ``next()`` waiting in another thread ends too."""
        self._ended = True
        # Not waited for: this may be called on the loop's own thread.
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits on it
            self._loop.call_soon_threadsafe(self._pager.stop)
