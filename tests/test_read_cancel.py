"""A read cancelled while it waits for a reader connection raises what cancelled it, always."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from power_store import AsyncSessionStore

pytestmark = pytest.mark.asyncio

READS = 300


async def _cancel_many(store: AsyncSessionStore, sid: str, how: str) -> list[BaseException]:
    """Start READS reads on one reader (most wait for it) and cancel each one *how*."""

    async def read() -> object:
        return await store.load_all_messages(sid)

    async def by_timeout() -> object:
        async with asyncio.timeout(0.0005):
            return await read()

    errors: list[BaseException] = []
    if how == "task.cancel":
        tasks = [asyncio.ensure_future(read()) for _ in range(READS)]
        await asyncio.sleep(0)  # every task now reads or waits for the connection
        loop = asyncio.get_running_loop()

        def cancel_from_another_thread() -> None:
            # Each cancel lands among the reader threads' results, so it often falls between a
            # waiter being cancelled and the connection being handed on.
            for task in tasks[1:]:
                loop.call_soon_threadsafe(task.cancel)
                time.sleep(0.0005)

        await asyncio.to_thread(cancel_from_another_thread)
    elif how == "wait_for":
        tasks = [asyncio.ensure_future(asyncio.wait_for(read(), 0.0005)) for _ in range(READS)]
    else:
        tasks = [asyncio.ensure_future(by_timeout()) for _ in range(READS)]
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            errors.append(outcome)
    return errors


@pytest.mark.parametrize("how", ["task.cancel", "wait_for", "asyncio.timeout"])
async def test_cancelled_reads_raise_cancellation_never_value_error(
    file_path: str, how: str
) -> None:
    if how == "asyncio.timeout" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout is new in Python 3.11")
    async with AsyncSessionStore.open(file_path, readers=1) as store:
        sid = await store.create_session()
        await store.append_messages(sid, [{"role": "user", "content": "x" * 100}] * 200)
        cancelled = 0
        for _ in range(5):
            errors = await _cancel_many(store, sid, how)
            expected = asyncio.CancelledError if how == "task.cancel" else TimeoutError
            assert [e for e in errors if not isinstance(e, expected)] == []
            cancelled += len(errors)
        assert cancelled > 0  # the storm did cancel reads that were waiting
        # The pool lost no connection: every later read still gets one.
        results = await asyncio.wait_for(
            asyncio.gather(*(store.load_all_messages(sid) for _ in range(20))), 10
        )
        assert all(len(r) == 200 for r in results)
