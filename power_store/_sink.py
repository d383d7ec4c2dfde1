"""A write handle for event streams: enqueue now, learn the outcome later.

``await store.append_message(...)`` waits for the commit of its batch, so an event loop that
writes one event after another pays one commit per event. A :class:`Sink` method waits only
for room in the writer's queue (the queue bound still applies) and returns the future of the
result, so a single coroutine fills whole batches the way many concurrent callers do.

Order: the writer takes ops in queue order and applies them in that order, so a sink's writes
land in the order its calls *returned* — for one coroutine calling it, its program order.

Errors: each future carries its own op's outcome. The sink also keeps the first error since
the last :meth:`Sink.flush`, which raises it, so an error nobody looked at surfaces there at
the latest (and asyncio never logs it as "never retrieved").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, TypeVar

from . import _build
from ._bridge import on_loop
from ._errors import StoreClosed
from ._ops import WriteOp

if TYPE_CHECKING:
    from ._store import AsyncSessionStore

T = TypeVar("T")

#: Ops a BlockingSink holds before its forwarder has moved them to the writer's queue.
INBOX = 1024


class Sink:
    """What :meth:`AsyncSessionStore.sink` returns. Every write method is ``async`` only to
    wait for queue space; it returns an :class:`asyncio.Future` of the write's result."""

    def __init__(self, store: AsyncSessionStore, session_id: str) -> None:
        self._store = store
        self.session_id = session_id
        self._pending: set[asyncio.Future[Any]] = set()
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<Sink {self.session_id!r} pending={len(self._pending)}>"

    async def _submit(self, op: WriteOp) -> asyncio.Future[Any]:
        future = await self._store._enqueue(op)
        self._pending.add(future)
        future.add_done_callback(self._settled)
        return future

    def _settled(self, future: asyncio.Future[Any]) -> None:
        self._pending.discard(future)
        if not future.cancelled():
            error = future.exception()  # also marks the error as retrieved
            if error is not None and self._error is None:
                self._error = error

    async def append_message(
        self,
        *,
        role: str,
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
        round_index: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> asyncio.Future[int]:
        """Queue one message (an assistant turn with ``tool_calls``, a tool result, …);
        the future resolves to its seq."""
        return await self._submit(
            _build.append_message(
                self.session_id, role, content, tool_calls, tool_call_id, name, round_index, meta
            )
        )

    async def append_messages(self, messages: list[dict[str, Any]]) -> asyncio.Future[list[int]]:
        """Queue several messages written all-or-none; the future resolves to their seqs."""
        return await self._submit(_build.append_messages(self.session_id, messages))

    async def set_pending(self, pending: dict[str, Any] | None) -> asyncio.Future[None]:
        return await self._submit(_build.set_pending(self.session_id, pending))

    async def set_round_index(self, round_index: int) -> asyncio.Future[None]:
        return await self._submit(_build.set_round_index(self.session_id, round_index))

    async def record_usage(
        self,
        *,
        round_index: int,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        total_tokens: int | None,
        model: str | None = None,
    ) -> asyncio.Future[None]:
        return await self._submit(
            _build.record_usage(
                self.session_id, round_index, prompt_tokens, completion_tokens, total_tokens,
                model,
            )
        )  # fmt: skip

    async def flush(self) -> None:
        """Wait until everything submitted so far has committed (or failed).

        :raises PowerStoreError: the first error of a write submitted since the last flush.
        """
        if self._pending:
            await asyncio.wait(list(self._pending))
        error, self._error = self._error, None
        if error is not None:
            raise error


class BlockingSink:
    """The sync facade's sink: the same methods, returning :class:`concurrent.futures.Future`;
    ``flush()`` blocks.

    A call checks its arguments in the calling thread and hands the op to a forwarding task on
    the store's loop through a bounded inbox, without waiting for the loop: a round trip to the
    loop per call (~0.5 ms measured under load) would cost as much as a commit. The inbox
    holds at most :data:`INBOX` ops (a full one blocks the caller), and the forwarder awaits
    room in the writer's queue, so both bounds hold. Order is the order of the calls.
    """

    def __init__(self, sink: Sink, loop: asyncio.AbstractEventLoop) -> None:
        self._sink = sink
        self._loop = loop
        self.session_id = sink.session_id
        self._lock = threading.Lock()
        self._inbox: deque[tuple[WriteOp, concurrent.futures.Future[Any]]] = deque()
        self._room = threading.Semaphore(INBOX)
        self._forwarding = False
        self._outstanding: set[concurrent.futures.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"<BlockingSink {self.session_id!r}>"

    def _submit(self, op: WriteOp) -> concurrent.futures.Future[Any]:
        store = self._sink._store
        if store.closed:  # its loop may be gone: nothing could ever settle the future
            raise StoreClosed(store.path)
        out: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._room.acquire()
        with self._lock:
            self._inbox.append((op, out))
            self._outstanding.add(out)
            start, self._forwarding = not self._forwarding, True
        out.add_done_callback(self._settled)
        if start:
            self._loop.call_soon_threadsafe(self._start_forwarder)
        return out

    def _settled(self, out: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._outstanding.discard(out)

    def _start_forwarder(self) -> None:
        self._loop.create_task(self._forward(), name="power_store-sink-forwarder")

    async def _forward(self) -> None:
        while True:
            with self._lock:
                if not self._inbox:
                    self._forwarding = False
                    return
                op, out = self._inbox.popleft()
            self._room.release()
            try:
                future = await self._sink._submit(op)
            except BaseException as exc:  # the store closed: fail the op, keep draining
                out.set_exception(exc)
                if self._sink._error is None:
                    self._sink._error = exc
                if not isinstance(exc, Exception):
                    raise
                continue
            future.add_done_callback(functools.partial(_copy, out))

    def append_message(
        self,
        *,
        role: str,
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
        round_index: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> concurrent.futures.Future[int]:
        return self._submit(
            _build.append_message(
                self.session_id, role, content, tool_calls, tool_call_id, name, round_index, meta
            )
        )

    def append_messages(
        self, messages: list[dict[str, Any]]
    ) -> concurrent.futures.Future[list[int]]:
        return self._submit(_build.append_messages(self.session_id, messages))

    def set_pending(self, pending: dict[str, Any] | None) -> concurrent.futures.Future[None]:
        return self._submit(_build.set_pending(self.session_id, pending))

    def set_round_index(self, round_index: int) -> concurrent.futures.Future[None]:
        return self._submit(_build.set_round_index(self.session_id, round_index))

    def record_usage(
        self,
        *,
        round_index: int,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        total_tokens: int | None,
        model: str | None = None,
    ) -> concurrent.futures.Future[None]:
        return self._submit(
            _build.record_usage(
                self.session_id, round_index, prompt_tokens, completion_tokens, total_tokens,
                model,
            )
        )  # fmt: skip

    def flush(self) -> None:
        """Block until everything submitted so far has committed (or failed).

        :raises PowerStoreError: the first error of a write submitted since the last flush.
        """
        with self._lock:
            waiting = list(self._outstanding)
        concurrent.futures.wait(waiting)
        on_loop(self._loop, self._sink.flush(), self._sink._store.path)


def _copy(out: concurrent.futures.Future[T], done: asyncio.Future[T]) -> None:
    """Settle the caller's thread-safe future like *done* (which lives on the store's loop)."""
    if done.cancelled():
        out.cancel()
    elif done.exception() is not None:
        out.set_exception(done.exception())
    else:
        out.set_result(done.result())
