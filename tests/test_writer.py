"""The write path: group commit, per-op failure isolation, seq allocation under concurrency."""

from __future__ import annotations

import asyncio

import pytest
from conftest import sql_rows

from power_store import AsyncSessionStore, SessionNotFound

pytestmark = pytest.mark.asyncio


async def test_500_concurrent_appends_get_gapless_seqs_holding_their_content(
    db_path: str,
) -> None:
    async with AsyncSessionStore.open(db_path) as store:
        sid = await store.create_session()
        contents = [f"message {i}" for i in range(500)]
        seqs = await asyncio.gather(
            *(store.append_message(sid, role="user", content=c) for c in contents)
        )
        assert sorted(seqs) == list(range(1, 501))
        stored = {m.seq: m.content for m in await store.load_all_messages(sid)}
        assert {seq: content for seq, content in zip(seqs, contents, strict=True)} == stored
        assert (await store.get_state(sid)).next_seq == 501


async def test_one_bad_op_fails_alone_in_its_batch(db_path: str) -> None:
    async with AsyncSessionStore.open(db_path) as store:
        good = await store.create_session()
        # Submitted together, so the writer takes them into the same batch.
        results = await asyncio.gather(
            store.append_message(good, role="user", content="a"),
            store.append_message("sess_missing", role="user", content="b"),
            store.set_pending("sess_missing", {"x": 1}),
            store.append_message(good, role="user", content="c"),
            store.create_session(session_id=good),
            store.record_compaction(good, from_seq=1, to_seq=99, note_content="n",
                                    before_tokens=1, after_tokens=1, round_index=0),
            store.set_round_index(good, 4),
            return_exceptions=True,
        )  # fmt: skip
        assert results[0] == 1
        assert isinstance(results[1], SessionNotFound)
        assert results[1].session_id == "sess_missing"
        assert isinstance(results[2], SessionNotFound)
        assert results[3] == 2
        assert isinstance(results[4], ValueError)
        assert isinstance(results[5], ValueError)
        assert results[6] is None
        assert [m.content for m in await store.load_all_messages(good)] == ["a", "c"]
        state = await store.get_state(good)
        assert (state.next_seq, state.round_index, state.last_compact_seq) == (3, 4, 0)


async def test_ops_in_one_batch_see_each_other(db_path: str) -> None:
    """Create, append, compact and close in one batch behave as if run one by one."""
    async with AsyncSessionStore.open(db_path) as store:
        results = await asyncio.gather(
            store.create_session(session_id="s"),
            store.append_message("s", role="user", content="1"),
            store.append_message("s", role="user", content="2"),
            store.record_compaction("s", from_seq=1, to_seq=2, note_content="n",
                                    before_tokens=2, after_tokens=1, round_index=0),
            store.append_message("s", role="user", content="3"),
            store.create_session(session_id="t"),
            store.append_message("t", role="user", content="x"),
            store.close_session("t"),
            store.append_message("t", role="user", content="too late"),
        return_exceptions=True,
        )  # fmt: skip
        assert results[:8] == ["s", 1, 2, (1, 3), 4, "t", 1, 1]
        assert isinstance(results[8], SessionNotFound)
        assert [m.content for m in await store.load_active_messages("s")] == ["n", "3"]
        assert await store.get_session("t") is None


async def test_two_stores_on_one_database_lose_nothing(target: str) -> None:
    async with (
        AsyncSessionStore.open(target) as first,
        AsyncSessionStore.open(target) as second,
    ):
        sid = await first.create_session()

        async def append(store: AsyncSessionStore, tag: str, i: int) -> tuple[int, str]:
            content = f"{tag}-{i}"
            return await store.append_message(sid, role="user", content=content), content

        results = await asyncio.gather(
            *(append(first, "a", i) for i in range(200)),
            *(append(second, "b", i) for i in range(200)),
        )
        assert sorted(seq for seq, _ in results) == list(range(1, 401))
        stored = {m.seq: m.content for m in await second.load_all_messages(sid)}
        assert stored == dict(results)


async def test_writes_by_another_connection_between_batches_are_seen(target: str) -> None:
    # The writer remembers each session's next seq between its batches; whatever another
    # connection commits in between must win over that memory.
    async with (
        AsyncSessionStore.open(target) as first,
        AsyncSessionStore.open(target) as second,
    ):
        sid = await first.create_session()
        for expected in range(1, 7):
            writer = first if expected % 2 else second
            assert await writer.append_message(sid, role="user", content="x") == expected
        await sql_rows(target, "UPDATE session_state SET next_seq = 40 WHERE session_id = ?", sid)
        assert await first.append_message(sid, role="user", content="x") == 40
        assert await second.close_session(sid) == 1
        with pytest.raises(SessionNotFound):
            await first.append_message(sid, role="user", content="x")
        assert await first.load_all_messages(sid) == []


async def test_a_big_batch_is_acknowledged_in_slices_that_let_other_work_run(
    db_path: str,
) -> None:
    async with AsyncSessionStore.open(db_path) as store:
        sids = [await store.create_session() for _ in range(64)]
        events: list[str] = []
        writing = True

        async def write(sid: str) -> None:
            await store.append_message(sid, role="user", content="x")
            events.append("ack")

        async def other_work() -> None:
            while writing:
                events.append("tick")
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other_work())
        before = (await store.stats()).batches
        await asyncio.gather(*(write(sid) for sid in sids))
        writing = False
        await ticker
        assert (await store.stats()).batches == before + 1  # all 64 were one batch
        first, last = events.index("ack"), len(events) - events[::-1].index("ack") - 1
        assert "tick" in events[first:last], "the loop ran nothing else while 64 callers resumed"


async def test_read_after_write_sees_it(target: str) -> None:
    async with AsyncSessionStore.open(target, readers=2) as store:
        sid = await store.create_session()
        for i in range(50):
            seq = await store.append_message(sid, role="user", content=str(i))
            message = await store.get_message(sid, seq)
            assert message is not None
            assert message.content == str(i)


async def test_queue_bound_applies_backpressure(target: str) -> None:
    async with AsyncSessionStore.open(target, max_queue=4, max_batch=2) as store:
        sid = await store.create_session()
        seqs = await asyncio.gather(
            *(store.append_message(sid, role="user", content=str(i)) for i in range(300))
        )
        assert sorted(seqs) == list(range(1, 301))
