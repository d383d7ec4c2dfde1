"""sink(): writes that return once queued; flush() waits for them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from typing import Any

import pytest
from conftest import is_sync

from power_store import (
    AsyncSessionStore,
    InvalidArgument,
    SessionNotFound,
    SessionStore,
    StoreClosed,
    StoreStats,
    _sink,
)

pytestmark = pytest.mark.asyncio


async def test_sink_writes_in_submission_order(store: Any) -> None:
    sid = await store.create_session()
    if is_sync(store):
        sink = store.sync.sink(sid)
        futures = [sink.append_message(role="user", content=str(i)) for i in range(300)]
        many = sink.append_messages([{"role": "assistant", "content": "a"}] * 3)
        others = [
            sink.set_pending({"c": 1}),
            sink.set_round_index(4),
            sink.record_usage(
                round_index=4, prompt_tokens=1, completion_tokens=2, total_tokens=3, model="m"
            ),
        ]
        sink.flush()
        assert all(isinstance(f, concurrent.futures.Future) and f.done() for f in futures)
        seqs = [f.result() for f in futures]
        assert many.result() == [301, 302, 303]
        assert [f.result() for f in others] == [None, None, None]
    else:
        sink = store.sink(sid)
        futures = [await sink.append_message(role="user", content=str(i)) for i in range(300)]
        many = await sink.append_messages([{"role": "assistant", "content": "a"}] * 3)
        await sink.set_pending({"c": 1})
        await sink.set_round_index(4)
        await sink.record_usage(round_index=4, prompt_tokens=1, completion_tokens=2,
                                total_tokens=3, model="m")  # fmt: skip
        await sink.flush()
        assert all(f.done() for f in futures)
        seqs = [f.result() for f in futures]
        assert many.result() == [301, 302, 303]
    assert seqs == list(range(1, 301))
    messages = await store.load_active_messages(sid)
    assert [m.content for m in messages[:300]] == [str(i) for i in range(300)]
    state = await store.get_state(sid)
    assert (state.pending, state.round_index) == ({"c": 1}, 4)
    assert (await store.usage_totals(sid)).total_tokens == 3


async def test_sink_errors_surface_on_future_and_flush(store: Any) -> None:
    if is_sync(store):
        sink = store.sync.sink("nope")
        future = sink.append_message(role="user")
        with pytest.raises(SessionNotFound):
            sink.flush()
        assert isinstance(future.exception(), SessionNotFound)
        sink.flush()  # reported once
        with pytest.raises(InvalidArgument):
            sink.append_message(role="")  # bad input fails at the call, queues nothing
    else:
        sink = store.sink("nope")
        future = await sink.append_message(role="user")
        with pytest.raises(SessionNotFound):
            await sink.flush()
        assert isinstance(future.exception(), SessionNotFound)
        await sink.flush()
        with pytest.raises(InvalidArgument):
            await sink.append_message(role="")


async def test_sink_respects_the_queue_bound() -> None:
    async with AsyncSessionStore.open(":memory:", max_queue=8) as store:
        sid = await store.create_session()
        sink = store.sink(sid)
        futures = []
        for i in range(500):
            futures.append(await sink.append_message(role="user", content=str(i)))
            assert (await store.stats()).queued <= 8
        await sink.flush()
        assert [f.result() for f in futures] == list(range(1, 501))


async def test_stats(store: Any) -> None:
    sid = await store.create_session()
    before = await store.stats()
    assert isinstance(before, StoreStats)
    await asyncio.gather(*(store.append_message(sid, role="user") for _ in range(200)))
    await store.load_active_messages(sid)
    stats = await store.stats()
    assert stats.ops - before.ops == 200
    assert stats.batches > before.batches
    assert 1 <= stats.mean_batch_size <= stats.max_batch_size
    if not is_sync(store):  # concurrent callers share batches
        assert stats.max_batch_size > 1
    assert 0 < stats.commit_p50_ms <= stats.commit_p99_ms
    assert stats.queued == 0
    assert stats.reader_waits >= 0


async def test_sinks_refuse_writes_after_close() -> None:
    store = await AsyncSessionStore.open(":memory:")
    sink = store.sink(await store.create_session())
    await store.close()
    with pytest.raises(StoreClosed):
        await sink.append_message(role="user")
    sync = SessionStore.open(":memory:")
    blocking = sync.sink(sync.create_session())
    sync.close()
    with pytest.raises(StoreClosed):
        blocking.append_message(role="user")


async def test_a_full_blocking_sink_inbox_blocks_its_caller_until_there_is_room(
    file_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain blocking code inside an async test: the facade runs on its own loop thread.
    monkeypatch.setattr(_sink, "INBOX", 2)
    with SessionStore.open(file_path, max_queue=1, busy_timeout=30) as store:
        sid = store.create_session()
        sink = store.sink(sid)
        # Another connection holds the write lock: the store's writer waits on it, its queue
        # (one op) fills, the forwarder waits for room, and the sink's inbox (two ops) fills.
        with contextlib.closing(sqlite3.connect(file_path, isolation_level=None)) as blocker:
            blocker.execute("BEGIN IMMEDIATE")
            submitted: list[concurrent.futures.Future[int]] = []

            def produce() -> None:
                for i in range(8):
                    submitted.append(sink.append_message(role="user", content=str(i)))

            producer = threading.Thread(target=produce)
            producer.start()
            producer.join(timeout=0.5)
            assert producer.is_alive(), "eight writes went through a two-op inbox"
            assert len(submitted) < 8
            blocker.execute("COMMIT")
        producer.join(timeout=30)
        assert not producer.is_alive()
        sink.flush()
        assert [f.result() for f in submitted] == list(range(1, 9))
