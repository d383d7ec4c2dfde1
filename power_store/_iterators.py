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

T = TypeVar("T")


class PagedIterator(Generic[T]):
    """An async iterator over pages; subclasses implement :meth:`next_page`."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()

    async def next_page(self) -> list[T] | None:
        """The next non-empty page, or ``None`` at the end."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Stop early; the next ``__anext__`` ends the iteration."""

    def __aiter__(self) -> PagedIterator[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            page = await self.next_page()
            if page is None:
                raise StopAsyncIteration
            self._items.extend(page)
        return self._items.popleft()


class ListPager(PagedIterator[T]):
    """A result that is read whole (one snapshot) and handed out as one page."""

    def __init__(self, fetch: Callable[[], Awaitable[list[T]]]) -> None:
        super().__init__()
        self._fetch: Callable[[], Awaitable[list[T]]] | None = fetch

    async def next_page(self) -> list[T] | None:
        fetch, self._fetch = self._fetch, None
        return None if fetch is None else await fetch()

    async def aclose(self) -> None:
        self._fetch = None


def blocking(loop: asyncio.AbstractEventLoop, pager: PagedIterator[T], path: str) -> Iterator[T]:
    """The sync facade's twin of *pager*: a generator that blocks for each page."""
    try:
        while (page := on_loop(loop, pager.next_page(), path)) is not None:
            yield from page
    finally:
        # Closing the generator (or dropping it) closes the pager; after the store closed
        # there is no loop left to do it on, and nothing left to release.
        with contextlib.suppress(Exception):
            on_loop(loop, pager.aclose(), path)
