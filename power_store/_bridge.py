"""Calling into the store's event loop from another thread and blocking for the answer.

``asyncio.run_coroutine_threadsafe`` does this with a Task whose done-callback copies the
outcome into a ``concurrent.futures.Future``: that callback runs one loop iteration after the
coroutine returns, and ``Future.result()`` waits on a Condition. Here the coroutine is wrapped
so it hands its outcome over itself, in the step that finishes it, and the caller waits on a
bare lock: one loop iteration and one condition variable less per sync call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._errors import FacadeMisuse, StoreClosed

T = TypeVar("T")


class _Call:
    __slots__ = ("done", "error", "task", "value")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        # The loop keeps only weak references to tasks: this one is held here, by the call the
        # waiting thread holds.
        self.task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop, runner: Coroutine[Any, Any, None]) -> None:
        self.task = loop.create_task(runner)

    async def run(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            self.value = await coro
        except BaseException as exc:  # every outcome goes back to the calling thread
            self.error = exc
        finally:
            self.done.release()


def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], path: str) -> T:
    """Run *coro* as a task on *loop* (running in another thread) and wait for its result.

    :raises StoreClosed: the loop has stopped (the store on *path* was closed).
    :raises FacadeMisuse: called on *loop*'s own thread, which would wait for itself forever.
    """
    if asyncio._get_running_loop() is loop:
        coro.close()
        raise FacadeMisuse(
            "a blocking SessionStore call (or next() on its iterator) was made on the store's "
            "own event-loop thread, which would wait for itself forever"
        )
    call = _Call()
    runner = call.run(coro)
    try:
        loop.call_soon_threadsafe(call.start, loop, runner)
    except RuntimeError:
        # The loop is closed: neither coroutine will run, and neither may warn that it never
        # did.
        runner.close()
        coro.close()
        raise StoreClosed(path) from None
    call.done.acquire()
    if call.error is not None:
        raise call.error
    value: T = call.value
    return value
