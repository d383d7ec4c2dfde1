"""fork_session and its lineage."""

from __future__ import annotations

from typing import Any

import pytest

from power_store import InvalidForkPoint, Lineage, SessionExists, SessionKind, SessionNotFound

pytestmark = pytest.mark.asyncio


async def _source(store: Any) -> str:
    sid = await store.create_session(system_prompt="sp", model="m", config={"t": 1},
                                     metadata={"team": "a"})  # fmt: skip
    for i in range(1, 7):
        await store.append_message(sid, role="user", content=f"m{i}", round_index=i)
    await store.record_compaction(sid, from_seq=1, to_seq=2, note_content="sum",
                                  before_tokens=9, after_tokens=1, round_index=2)  # fmt: skip
    await store.set_pending(sid, {"calls": ["c1"]})
    await store.set_round_index(sid, 6)
    await store.record_usage(sid, round_index=1, prompt_tokens=1, completion_tokens=1,
                             total_tokens=2)  # fmt: skip
    return sid


async def test_fork_whole_history(store: Any) -> None:
    src = await _source(store)
    fork = await store.fork_session(src)
    row, src_row = await store.get_session(fork), await store.get_session(src)
    assert (row.system_prompt, row.model, row.config, row.metadata) == ("sp", "m", {"t": 1},
                                                                        {"team": "a"})  # fmt: skip
    assert row.kind is SessionKind.ROOT
    assert row.parent_session_id is None
    assert row.created_at >= src_row.created_at
    assert await store.get_lineage(fork) == Lineage(fork, src, 7)
    assert await store.get_lineage(src) == Lineage(src, None, None)
    assert await store.get_lineage("nope") is None

    def strip(rows: list[Any]) -> list[Any]:
        return [(m.seq, m.role, m.content, m.state, m.meta, m.created_at) for m in rows]

    assert strip(await store.load_active_messages(fork)) == strip(
        await store.load_active_messages(src)
    )
    assert [c.note_seq for c in await store.list_compactions(fork)] == [7]
    state, src_state = await store.get_state(fork), await store.get_state(src)
    assert (state.next_seq, state.round_index, state.last_compact_seq, state.pending) == (
        src_state.next_seq, 6, 1, {"calls": ["c1"]},
    )  # fmt: skip
    assert (await store.usage_totals(fork)).rounds == 0

    # Independent from here on.
    assert await store.append_message(fork, role="user", content="fork only") == 8
    assert await store.append_message(src, role="user", content="source only") == 8
    assert (await store.get_message(src, 8)).content == "source only"
    page = await store.list_sessions(forked_from=src)
    assert [s.session_id for s in page.sessions] == [fork]


async def test_fork_in_the_past(store: Any) -> None:
    src = await _source(store)
    fork = await store.fork_session(src, at_seq=4, new_session_id="f1", metadata={"x": 1})
    assert fork == "f1"
    # Logical order: the note (seq 7) stands before 3, so it is part of the history up to 4.
    assert [m.seq for m in await store.load_active_messages(fork)] == [7, 3, 4]
    state = await store.get_state(fork)
    assert (state.next_seq, state.round_index, state.pending) == (8, 4, None)
    assert (await store.get_session(fork)).metadata == {"x": 1}
    assert await store.get_lineage(fork) == Lineage(fork, src, 4)


@pytest.mark.parametrize(
    ("at_seq", "error"),
    [(1, InvalidForkPoint), (99, InvalidForkPoint), (0, ValueError), ("3", ValueError)],
)
async def test_bad_fork_points(store: Any, at_seq: Any, error: type) -> None:
    src = await _source(store)
    before = await store.count_sessions()
    with pytest.raises(error) as err:
        await store.fork_session(src, at_seq=at_seq)
    if error is InvalidForkPoint:
        assert err.value.session_id == src
    assert await store.count_sessions() == before


async def test_fork_errors(store: Any) -> None:
    src = await _source(store)
    with pytest.raises(SessionNotFound):
        await store.fork_session("nope")
    with pytest.raises(SessionExists):
        await store.fork_session(src, new_session_id=src)
    assert await store.count_sessions() == 1
