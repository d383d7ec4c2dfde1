"""watch(): a live feed that is exactly-once and in order, cheap, and ends cleanly."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest
from conftest import is_sync

from power_store import AsyncSessionStore, SessionNotFound, SessionStore, StoreClosed

pytestmark = pytest.mark.asyncio

BURST = 10_000


def _consume_in_thread(store: SessionStore, sid: str, count: int) -> tuple[threading.Thread, list]:
    got: list[int] = []

    def run() -> None:
        for message in store.watch(sid):
            got.append(message.seq)
            if len(got) == count:
                break

    thread = threading.Thread(target=run)
    thread.start()
    return thread, got


async def _until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def _consume(store: AsyncSessionStore, sid: str, count: int, got: list[int]) -> None:
    async for message in store.watch(sid):
        got.append(message.seq)
        if len(got) == count:
            break


async def test_burst_of_10k_writes_seen_exactly_once_in_order(store: Any) -> None:
    sid = await store.create_session()
    if is_sync(store):
        thread, got = _consume_in_thread(store.sync, sid, BURST)
        for _ in range(BURST // 200):
            store.sync.append_messages(sid, [{"role": "user", "content": "x"}] * 199)
            store.sync.append_message(sid, role="assistant", content="y")
        thread.join(timeout=30)
    else:
        got = []
        watcher = asyncio.ensure_future(_consume(store, sid, BURST, got))
        await asyncio.sleep(0)
        for _ in range(BURST // 1000):  # concurrent callers: many ops per batch
            await asyncio.gather(
                *(store.append_message(sid, role="user", content="x") for _ in range(500)),
                *(store.append_messages(sid, [{"role": "user"}] * 50) for _ in range(10)),
            )
        await asyncio.wait_for(watcher, 30)
    assert got == list(range(1, BURST + 1))
    assert (await store.stats()).watchers == 0


_OTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from power_store import AsyncSessionStore

    async def main(path, sid):
        async with AsyncSessionStore.open(path) as store:
            for i in range(20):
                await store.append_messages(sid, [{"role": "user", "content": str(i)}] * 24)
                await store.append_message(sid, role="assistant")
                await asyncio.sleep(0.005)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_writes_of_another_process_are_seen(store: Any) -> None:
    if store.path == ":memory:":
        pytest.skip("another process cannot open a private in-memory database")
    sid = await store.create_session()
    await store.append_message(sid, role="user", content="before")
    total = 1 + 20 * 25
    args = [sys.executable, "-c", _OTHER_PROCESS, store.path, sid]
    if is_sync(store):
        thread, got = _consume_in_thread(store.sync, sid, total)
        await asyncio.to_thread(subprocess.run, args, check=True, timeout=30)
        thread.join(timeout=30)
    else:
        got = []
        watcher = asyncio.ensure_future(_consume(store, sid, total, got))
        proc = await asyncio.create_subprocess_exec(*args)
        assert await proc.wait() == 0
        await asyncio.wait_for(watcher, 30)
    assert got == list(range(1, total + 1))


async def test_ends_when_the_session_is_deleted_and_resumes_after_seq(store: Any) -> None:
    sid = await store.create_session()
    await store.append_messages(sid, [{"role": "user"}] * 3)
    if is_sync(store):
        watch = store.sync.watch(sid, after_seq=1)
        assert [next(watch).seq, next(watch).seq] == [2, 3]
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.extend(m.seq for m in watch))
        thread.start()
        store.sync.append_message(sid, role="user")
        await _until(lambda: bool(result))  # rows deleted before being read are not sent
        store.sync.close_session(sid)
        thread.join(timeout=10)
        assert not thread.is_alive()
    else:
        result = []
        task = asyncio.ensure_future(_consume(store, sid, 10**9, result))
        await _until(lambda: len(result) >= 3)
        await store.append_message(sid, role="user")
        await _until(lambda: len(result) >= 4)  # rows deleted before being read are not sent
        await store.close_session(sid)
        await asyncio.wait_for(task, 10)
        assert result[:3] == [1, 2, 3]
        result = result[3:]
    assert result == [4]
    if is_sync(store):
        with pytest.raises(SessionNotFound):
            next(store.sync.watch("nope"))
    else:
        with pytest.raises(SessionNotFound):
            await store.watch("nope").__anext__()


async def test_ends_when_the_store_closes() -> None:
    store = await AsyncSessionStore.open(":memory:")
    sid = await store.create_session()
    got: list[int] = []
    task = asyncio.ensure_future(_consume(store, sid, 10**9, got))
    await store.append_message(sid, role="user")
    await _until(lambda: bool(got))
    await store.close()
    await asyncio.wait_for(task, 5)
    assert got == [1]

    sync = SessionStore.open(":memory:")
    sid = sync.create_session()
    thread, got = _consume_in_thread(sync, sid, 10**9)
    sync.append_message(sid, role="user")
    await _until(lambda: bool(got))
    sync.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


async def test_slow_consumer_holds_nothing_and_catches_up() -> None:
    async with AsyncSessionStore.open(":memory:", max_queue=100) as store:
        sid = await store.create_session()
        watch = store.watch(sid)
        await store.append_message(sid, role="user")
        assert (await watch.__anext__()).seq == 1
        # The consumer stops reading; writes go on at full speed through a small queue.
        for _ in range(30):
            await asyncio.gather(*(store.append_message(sid, role="user") for _ in range(100)))
        assert (await store.stats()).watchers == 0  # not waiting: nothing registered, no buffer
        rest: list[int] = []
        async for message in watch:
            rest.append(message.seq)
            if message.seq == 3001:
                break
        assert rest == list(range(2, 3002))
        await watch.aclose()
        with pytest.raises(StopAsyncIteration):
            await watch.__anext__()


async def test_many_watchers() -> None:
    async with AsyncSessionStore.open(":memory:") as store:
        sids = [await store.create_session() for _ in range(50)]
        results: dict[int, list[int]] = {i: [] for i in range(200)}
        tasks = [
            asyncio.ensure_future(_consume(store, sids[i % 50], 5, results[i])) for i in range(200)
        ]
        await asyncio.sleep(0.05)
        assert (await store.stats()).watchers == 200
        for _ in range(5):
            await asyncio.gather(*(store.append_message(s, role="user") for s in sids))
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert all(seqs == [1, 2, 3, 4, 5] for seqs in results.values())


async def test_aclose_wakes_and_ends_a_consumer_blocked_in_async_for() -> None:
    async with AsyncSessionStore.open(":memory:") as store:
        sid = await store.create_session()
        watch = store.watch(sid)
        got: list[int] = []

        async def consume() -> None:
            async for message in watch:
                got.append(message.seq)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        assert (await store.stats()).watchers == 1  # blocked, nothing to read
        await watch.aclose()
        await asyncio.wait_for(task, 5)
        await store.append_message(sid, role="user")
        assert got == []
        assert (await store.stats()).watchers == 0


async def test_sync_watch_is_stopped_from_another_thread(file_path: str) -> None:
    with SessionStore.open(file_path) as store:
        sid = store.create_session()
        watch = store.watch(sid)
        got: list[int] = []
        thread = threading.Thread(target=lambda: got.extend(m.seq for m in watch))
        thread.start()
        await _until(lambda: store.stats().watchers == 1)
        watch.close()
        await asyncio.to_thread(thread.join, 5)
        assert not thread.is_alive()
        store.append_message(sid, role="user")
        assert got == []
        with pytest.raises(StopIteration):
            next(watch)


async def test_after_the_store_closes_begun_iterators_end_and_new_ones_raise(store: Any) -> None:
    # One rule on both facades: what has begun ends quietly, what has not raises StoreClosed.
    sid = await store.create_session()
    await store.append_message(sid, role="user")
    target = store.sync if is_sync(store) else store
    begun_watch, new_watch = target.watch(sid), target.watch(sid)
    begun_export, new_export = target.export_session(sid), target.export_session(sid)

    async def next_of(iterator: Any) -> Any:
        return next(iterator) if is_sync(store) else await iterator.__anext__()

    async def rest_of(iterator: Any) -> list[Any]:
        return list(iterator) if is_sync(store) else [item async for item in iterator]

    assert (await next_of(begun_watch)).seq == 1
    assert (await next_of(begun_export)).startswith('{"type":"header"')
    await store.close()
    assert await rest_of(begun_watch) == []
    assert len(await rest_of(begun_export)) == 3  # already read: session, message, state
    for iterator in (new_watch, new_export):
        with pytest.raises(StoreClosed):
            await next_of(iterator)


async def test_a_replace_by_import_ends_the_watches_of_that_session(store: Any) -> None:
    sid = await store.create_session(session_id="replaced")
    await store.append_messages(sid, [{"role": "user", "content": f"v1-{c}"} for c in "abc"])
    async with AsyncSessionStore.open(":memory:") as other:
        await other.create_session(session_id=sid)
        await other.append_messages(sid, [{"role": "user", "content": f"v2-{c}"} for c in "abcd"])
        v2 = [line async for line in other.export_session(sid)]
    waiting: list[str | None] = []  # a consumer blocked for the next message
    if is_sync(store):
        idle = store.sync.watch(sid)  # a consumer that is not reading when the replace lands
        thread = threading.Thread(target=lambda: waiting.extend(m.content for m in
                                                                store.sync.watch(sid)))  # fmt: skip
        thread.start()
        assert next(idle).content == "v1-a"
    else:
        idle = store.watch(sid)
        consumer = store.watch(sid)

        async def consume() -> None:
            async for message in consumer:
                waiting.append(message.content)

        task = asyncio.ensure_future(consume())
        assert (await idle.__anext__()).content == "v1-a"
    await _until(lambda: len(waiting) == 3)
    await store.import_session(v2, on_conflict="replace")
    if is_sync(store):
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()
        rest = [m.content for m in idle]
    else:
        await asyncio.wait_for(task, 10)
        rest = [m.content async for m in idle]
    assert waiting == ["v1-a", "v1-b", "v1-c"]
    # What it had read before the replace, and nothing of the new rows, whose seqs it would
    # have skipped into (v2-d only).
    assert rest == ["v1-b", "v1-c"]
    after = store.sync.watch(sid) if is_sync(store) else store.watch(sid)
    first = next(after) if is_sync(store) else await after.__anext__()
    assert first.content == "v2-a"  # a watch begun after the replace follows the new rows


async def test_a_foreign_commit_while_the_writer_is_busy_wakes_the_watch(file_path: str) -> None:
    # The poller reads data_version on the writer connection, so while the writer waits for the
    # file's write lock its reading waits too. Another connection (as another process would)
    # holds that lock, and commits a message after the watcher's read: whatever data_version
    # the poller then reads first, it must not be taken as "nothing new".
    async with AsyncSessionStore.open(
        file_path, busy_timeout=30, watch_poll_interval=0.01
    ) as store:
        sid = await store.create_session()
        other = await store.create_session()
        watch = store.watch(sid)

        async def next_seq() -> int:
            return (await asyncio.wait_for(watch.__anext__(), 5)).seq

        foreign = sqlite3.connect(file_path, isolation_level=None)
        try:
            for seq in (1, 2):  # 1: the store's first poller; 2: a poller started again
                foreign.execute("BEGIN IMMEDIATE")
                busy = asyncio.ensure_future(store.append_message(other, role="user"))
                await asyncio.sleep(0.05)  # the writer now waits for the lock
                waiting = asyncio.ensure_future(next_seq())
                await _until_async(store, lambda stats: stats.watchers == 1)
                await asyncio.sleep(0.05)  # its read found nothing; it waits
                foreign.execute(
                    "INSERT INTO messages (session_id, seq, role, content, created_at, position) "
                    "VALUES (?, ?, 'user', 'foreign', 0, ?)",
                    (sid, seq, seq),
                )
                foreign.execute(
                    "UPDATE session_state SET next_seq = ? WHERE session_id = ?", (seq + 1, sid)
                )
                foreign.execute("COMMIT")
                await busy
                assert await waiting == seq
                await asyncio.sleep(0.1)  # nobody waits: the poller stops
        finally:
            foreign.close()


async def _until_async(store: AsyncSessionStore, condition: Any) -> None:
    for _ in range(500):
        if condition(await store.stats()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_a_watch_begun_while_a_replace_runs_follows_the_new_rows(file_path: str) -> None:
    async with AsyncSessionStore.open(file_path, busy_timeout=30) as store:
        sid = await store.create_session(session_id="replaced")
        await store.append_messages(sid, [{"role": "user", "content": "v1"}] * 2)
        v2 = [line.replace('"v1"', '"v2"') async for line in store.export_session(sid)]
        store.watch(sid)  # the hub exists, as it would for any store that has watched
        blocker = sqlite3.connect(file_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the import waits for the lock: it is in flight
        try:
            replace = asyncio.ensure_future(store.import_session(v2, on_conflict="replace"))
            await asyncio.sleep(0.05)
            first = asyncio.ensure_future(store.watch(sid).__anext__())
            await asyncio.sleep(0.1)
            assert not first.done()  # it waits for the import rather than read the old rows
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await replace
        assert (await asyncio.wait_for(first, 5)).content == "v2"
