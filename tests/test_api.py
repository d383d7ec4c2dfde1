"""Every public method, on both facades and on file and memory databases."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from conftest import sql_rows

from power_store import (
    CompactionRow,
    InvalidArgument,
    InvalidCompactionRange,
    MessageState,
    SessionExists,
    SessionKind,
    SessionNotFound,
    SessionStatus,
    SpawnDepthExceeded,
    SubagentLifecycle,
)

pytestmark = pytest.mark.asyncio


async def test_create_and_get_session(store: Any) -> None:
    sid = await store.create_session(
        system_prompt="be brief", model="gpt-x", config={"t": 0.5}, metadata={"user": "ann"}
    )
    assert re.fullmatch(r"sess_[0-9a-f]{24}", sid)
    row = await store.get_session(sid)
    assert row.session_id == sid
    assert (row.system_prompt, row.model, row.config, row.metadata) == (
        "be brief", "gpt-x", {"t": 0.5}, {"user": "ann"},
    )  # fmt: skip
    assert row.status is SessionStatus.ACTIVE
    assert row.kind is SessionKind.ROOT
    assert row.spawn_depth == 0
    assert row.lifecycle is SubagentLifecycle.EPHEMERAL
    assert isinstance(row.created_at, int)
    assert row.created_at == row.updated_at
    assert await store.get_session("sess_missing") is None
    state = await store.get_state(sid)
    assert (state.next_seq, state.round_index, state.last_compact_seq, state.pending) == (
        1, 0, 0, None,
    )  # fmt: skip


async def test_every_write_in_a_later_millisecond_advances_updated_at(store: Any) -> None:
    sid = await store.create_session()
    stamps = [(await store.get_session(sid)).updated_at]
    for _ in range(3):
        await asyncio.sleep(0.002)  # a later millisecond than the last stamp
        await store.append_message(sid, role="user", content="x")
        stamps.append((await store.get_session(sid)).updated_at)
    assert stamps == sorted(set(stamps)), stamps  # strictly increasing


async def test_custom_session_id_and_duplicate(store: Any) -> None:
    assert await store.create_session(session_id="mine") == "mine"
    with pytest.raises(SessionExists) as err:
        await store.create_session(session_id="mine", model="other")
    assert err.value.session_id == "mine"
    assert (await store.get_session("mine")).model is None


async def test_subagents_depth_and_children(store: Any) -> None:
    root = await store.create_session()
    chain = [root]
    for depth in range(1, 4):
        child = await store.create_session(
            parent_session_id=chain[-1], spawn_tool_call_id=f"call_{depth}"
        )
        row = await store.get_session(child)
        assert row.kind is SessionKind.SUBAGENT
        assert row.spawn_depth == depth
        assert row.parent_session_id == chain[-1]
        assert row.spawn_tool_call_id == f"call_{depth}"
        chain.append(child)
    with pytest.raises(SpawnDepthExceeded) as err:
        await store.create_session(parent_session_id=chain[-1])
    assert isinstance(err.value, ValueError)
    assert err.value.session_id == chain[-1]
    with pytest.raises(SessionNotFound) as missing:
        await store.create_session(parent_session_id="sess_nope")
    assert isinstance(missing.value, ValueError)
    assert [c.session_id for c in await store.list_children(root)] == [chain[1]]
    assert await store.list_children("sess_nope") == []


async def test_archive_and_update_prompt(store: Any) -> None:
    sid = await store.create_session(system_prompt="a")
    await store.update_session_prompt(sid, "b")
    await store.archive_session(sid)
    row = await store.get_session(sid)
    assert row.system_prompt == "b"
    assert row.status is SessionStatus.ARCHIVED
    await store.update_session_prompt(sid, None)
    assert (await store.get_session(sid)).system_prompt is None
    for call in (store.archive_session("nope"), store.update_session_prompt("nope", "x")):
        with pytest.raises(SessionNotFound):
            await call


async def test_close_session_cascade_rules(store: Any) -> None:
    root = await store.create_session()
    linked = await store.create_session(parent_session_id=root, lifecycle="linked")
    ephemeral = await store.create_session(parent_session_id=root)
    detached = await store.create_session(
        parent_session_id=root, lifecycle=SubagentLifecycle.DETACHED
    )
    grandchild = await store.create_session(parent_session_id=linked, lifecycle="linked")
    under_detached = await store.create_session(parent_session_id=detached, lifecycle="linked")
    await store.append_message(grandchild, role="user", content="x")
    await store.record_usage(grandchild, round_index=0, prompt_tokens=1, completion_tokens=1,
                             total_tokens=2)  # fmt: skip

    assert await store.close_session(root) == 4  # root, linked, ephemeral, grandchild
    for gone in (root, linked, ephemeral, grandchild):
        assert await store.get_session(gone) is None
        assert await store.get_state(gone) is None
    assert await store.load_all_messages(grandchild) == []
    survivor = await store.get_session(detached)
    assert survivor.parent_session_id is None
    assert (await store.get_session(under_detached)).parent_session_id == detached
    assert await store.close_session(root) == 0


async def test_close_session_without_cascade(store: Any) -> None:
    root = await store.create_session()
    child = await store.create_session(parent_session_id=root, lifecycle="linked")
    assert await store.close_session(root, cascade=False) == 1
    assert (await store.get_session(child)).parent_session_id is None


async def test_append_and_load(store: Any) -> None:
    sid = await store.create_session()
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert await store.append_message(sid, role="user", content="hi") == 1
    assert await store.append_message(sid, role="assistant", tool_calls=calls, round_index=0) == 2
    assert (
        await store.append_message(
            sid, role="tool", content="42", tool_call_id="c1", name="f", meta={"ms": 3}
        )
        == 3
    )
    msgs = await store.load_active_messages(sid)
    assert [m.seq for m in msgs] == [1, 2, 3]
    assert (msgs[0].meta, msgs[0].tool_calls) == ({}, None)
    assert (msgs[1].tool_calls, msgs[1].round_index) == (calls, 0)
    assert (msgs[2].tool_call_id, msgs[2].name, msgs[2].meta) == ("c1", "f", {"ms": 3})
    assert all(m.state is MessageState.ACTIVE for m in msgs)
    assert await store.get_message(sid, 2) == msgs[1]
    assert await store.get_message(sid, 9) is None
    assert (await store.get_state(sid)).next_seq == 4
    with pytest.raises(SessionNotFound) as err:
        await store.append_message("nope", role="user")
    assert err.value.session_id == "nope"


async def test_compaction_note_stands_where_its_range_stood(store: Any) -> None:
    sid = await store.create_session()
    for i in range(1, 11):
        await store.append_message(sid, role="user", content=f"m{i}")
    compact_seq, note_seq = await store.record_compaction(
        sid, from_seq=1, to_seq=5, note_content="summary", before_tokens=500,
        after_tokens=50, round_index=3, note_meta={"by": "test"},
    )  # fmt: skip
    assert (compact_seq, note_seq) == (1, 11)
    active = await store.load_active_messages(sid)
    assert [m.seq for m in active] == [11, 6, 7, 8, 9, 10]
    note = active[0]
    assert (note.role, note.name, note.content) == ("system", "compact_note", "summary")
    assert note.meta == {
        "by": "test", "compacted_at_round": 3, "from_seq": 1, "to_seq": 5,
        "original_tokens": 500, "summary_tokens": 50,
    }  # fmt: skip
    every = await store.load_all_messages(sid)
    assert [m.seq for m in every] == list(range(1, 12))
    assert [m.state for m in every[:5]] == [MessageState.COMPACTED_OUT] * 5

    # A second compaction may swallow the first note; the new note takes its place.
    assert await store.record_compaction(
        sid, from_seq=6, to_seq=11, note_content="summary 2", before_tokens=None,
        after_tokens=None, round_index=None,
    ) == (2, 12)  # fmt: skip
    active = await store.load_active_messages(sid)
    assert [m.seq for m in active] == [12]
    state = await store.get_state(sid)
    assert (state.last_compact_seq, state.next_seq) == (2, 13)
    rows = await store.list_compactions(sid)
    assert rows[0] == CompactionRow(
        session_id=sid, compact_seq=1, note_seq=11, from_seq=1, to_seq=5, before_tokens=500,
        after_tokens=50, round_index=3, created_at=rows[0].created_at,
    )  # fmt: skip
    assert [r.compact_seq for r in rows] == [1, 2]


@pytest.mark.parametrize(
    ("from_seq", "to_seq", "error"),
    [
        (3, 2, InvalidCompactionRange),  # reversed
        (2, 5, InvalidCompactionRange),  # past the last seq (the note took seq 4)
        (0, 1, InvalidArgument),  # seqs start at 1
        (-1, 2, InvalidArgument),
        (1, 1, InvalidCompactionRange),  # already compacted
    ],
)
async def test_compaction_range_errors(store: Any, from_seq: int, to_seq: int, error: type) -> None:
    sid = await store.create_session()
    for _ in range(3):
        await store.append_message(sid, role="user", content="x")
    await store.record_compaction(sid, from_seq=1, to_seq=1, note_content="n",
                                  before_tokens=1, after_tokens=1, round_index=0)  # fmt: skip
    before = (await store.load_all_messages(sid), await store.get_state(sid))
    with pytest.raises(error):
        await store.record_compaction(sid, from_seq=from_seq, to_seq=to_seq, note_content="n",
                                      before_tokens=1, after_tokens=1, round_index=0)  # fmt: skip
    assert (await store.load_all_messages(sid), await store.get_state(sid)) == before


async def test_state_and_usage(store: Any) -> None:
    sid = await store.create_session()
    await store.set_round_index(sid, 7)
    pending = {"tool_calls": [{"id": "c1"}], "round": 7}
    await store.set_pending(sid, pending)
    state = await store.get_state(sid)
    assert (state.round_index, state.pending) == (7, pending)
    await store.set_pending(sid, {})
    assert (await store.get_state(sid)).pending is None
    await store.set_pending(sid, pending)
    await store.set_pending(sid, None)
    assert (await store.get_state(sid)).pending is None

    await store.record_usage(sid, round_index=1, prompt_tokens=10, completion_tokens=5,
                             total_tokens=15, model="m")  # fmt: skip
    await store.record_usage(sid, round_index=1, prompt_tokens=11, completion_tokens=6,
                             total_tokens=17)  # fmt: skip
    if store.path != ":memory:":  # no read API for usage rows in the reference; look directly
        rows = await sql_rows(store, "SELECT round_index, prompt_tokens, completion_tokens, "
                                     "total_tokens, model FROM usage_rounds")  # fmt: skip
        assert rows == [(1, 11, 6, 17, None)]
    for call in (
        store.set_round_index("nope", 1),
        store.set_pending("nope", pending),
        store.record_usage("nope", round_index=1, prompt_tokens=1, completion_tokens=1,
                           total_tokens=2),
    ):  # fmt: skip
        with pytest.raises(SessionNotFound):
            await call
