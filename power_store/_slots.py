"""The writer queue's bound: a counting semaphore whose uncontended take is one plain call.

``asyncio.Semaphore`` costs a coroutine and three method calls per take and give; at one take
and one give per write that was measurable on the event loop. Here taking a free slot is a
synchronous ``try_take()``; only a caller who finds the queue full awaits :meth:`take`. A given
slot goes straight to the longest waiter (first come, first served), so a steady stream of new
writers cannot starve one that waited.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    __slots__ = ("_free", "_waiters")

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody is waiting for one."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a slot, in arrival order."""
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give(1)  # handed a slot in the instant we were cancelled: pass it on
            elif waiter in self._waiters:  # (give may have dropped it already)
                self._waiters.remove(waiter)
            raise

    def give(self, count: int) -> None:
        """Return *count* slots, each to the longest waiter if there is one."""
        waiters = self._waiters
        while count and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1
        self._free += count
