"""The cancellation rule: an op cancelled before the writer takes it is never written; an op
already taken into a batch commits whole and only its result is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest

from power_store import AsyncSessionStore


@pytest.mark.asyncio
async def test_cancelled_before_taken_is_dropped_after_taken_commits_whole(
    file_path: str,
) -> None:
    async with AsyncSessionStore.open(file_path, busy_timeout=10) as store:
        sid = await store.create_session()
        # Another connection holds the write lock, so the writer's next batch stalls in
        # BEGIN IMMEDIATE: whatever it took is "in flight", whatever comes after waits queued.
        blocker = sqlite3.connect(file_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            in_flight = asyncio.create_task(
                store.record_compaction(sid, from_seq=1, to_seq=1, note_content="never valid",
                                        before_tokens=1, after_tokens=1, round_index=0)
            )  # fmt: skip
            taken = asyncio.create_task(store.append_message(sid, role="user", content="taken"))
            await asyncio.sleep(0.3)
            queued = asyncio.create_task(store.append_message(sid, role="user", content="queued"))
            await asyncio.sleep(0.1)
            for task in (in_flight, taken, queued):
                task.cancel()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for task in (in_flight, taken, queued):
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert task.cancelled()
        # The writer survived; a later write is ordered after everything above.
        after = await store.append_message(sid, role="user", content="after")
        contents = [m.content for m in await store.load_all_messages(sid)]
        assert contents == ["taken", "after"]
        assert after == 2
        assert (await store.get_state(sid)).last_compact_seq == 0


@pytest.mark.asyncio
async def test_cancelling_waiters_on_a_full_queue_leaves_the_store_working(
    file_path: str,
) -> None:
    async with AsyncSessionStore.open(file_path, max_queue=2) as store:
        sid = await store.create_session()
        tasks = [
            asyncio.create_task(store.append_message(sid, role="user", content=str(i)))
            for i in range(200)
        ]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        acknowledged = {r for r in results if isinstance(r, int)}
        stored = await store.load_all_messages(sid)
        seqs = [m.seq for m in stored]
        # Gapless, every acknowledged seq present, nothing torn.
        assert seqs == list(range(1, len(stored) + 1))
        assert acknowledged <= set(seqs)
        assert await store.append_message(sid, role="user", content="x") == len(stored) + 1
