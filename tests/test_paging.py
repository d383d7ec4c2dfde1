"""load_messages: windows in logical order that never split a tool-call group."""

from __future__ import annotations

from typing import Any

import pytest

from power_store import InvalidArgument, MessageRow

pytestmark = pytest.mark.asyncio


def _calls(*ids: str) -> list[dict[str, Any]]:
    return [
        {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids
    ]


# A history with groups of 1, 2 and 3 results, back to back and between plain turns.
_HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "tool_calls": _calls("a")},
    {"role": "tool", "tool_call_id": "a", "content": "ra"},
    {"role": "assistant", "tool_calls": _calls("b", "c")},
    {"role": "tool", "tool_call_id": "b", "content": "rb"},
    {"role": "tool", "tool_call_id": "c", "content": "rc"},
    {"role": "assistant", "content": "answer 1"},
    {"role": "user", "content": "q2"},
    {"role": "assistant", "tool_calls": _calls("d", "e", "f")},
    {"role": "tool", "tool_call_id": "d", "content": "rd"},
    {"role": "tool", "tool_call_id": "e", "content": "re"},
    {"role": "tool", "tool_call_id": "f", "content": "rf"},
    {"role": "assistant", "content": "answer 2"},
]


def _assert_whole_groups(window: list[MessageRow], full: list[MessageRow]) -> None:
    seqs = [m.seq for m in full]
    start = seqs.index(window[0].seq)
    assert [m.seq for m in window] == seqs[start : start + len(window)], "not contiguous"
    assert window[0].role != "tool", "window starts with an orphan tool result"
    in_window = {m.seq for m in window}
    for i, m in enumerate(full):
        if m.role == "assistant" and m.tool_calls:
            j = i + 1
            group = {m.seq}
            while j < len(full) and full[j].role == "tool":
                group.add(full[j].seq)
                j += 1
            assert not (group & in_window) or group <= in_window, "a group was split"


async def _history(store: Any) -> tuple[str, list[MessageRow]]:
    sid = await store.create_session()
    await store.append_messages(sid, _HISTORY)
    return sid, await store.load_active_messages(sid)


async def test_every_tail_and_limit_window_keeps_groups_whole(store: Any) -> None:
    sid, full = await _history(store)
    assert await store.load_messages(sid) == full
    for n in range(1, len(full) + 1):
        tail = await store.load_messages(sid, tail=n)
        _assert_whole_groups(tail, full)
        assert tail[-1] == full[-1]
        assert len(tail) >= n
        head = await store.load_messages(sid, limit=n)
        _assert_whole_groups(head, full)
        assert head[0] == full[0]
        assert len(head) >= n
        for after in range(0, len(full)):
            window = await store.load_messages(sid, after_seq=after, limit=n)
            if window:
                _assert_whole_groups(window, full)
            before = await store.load_messages(sid, before_seq=after + 1, tail=n)
            if before:
                _assert_whole_groups(before, full)
    # The exact widening: tail=1 ends in "answer 2"; tail=2 would start at a result of 'f'.
    assert [m.content for m in await store.load_messages(sid, tail=1)] == ["answer 2"]
    assert [m.seq for m in await store.load_messages(sid, tail=2)] == [9, 10, 11, 12, 13]
    assert [m.seq for m in await store.load_messages(sid, limit=2)] == [1, 2, 3]


async def test_paging_backwards_visits_everything_once(store: Any) -> None:
    sid, full = await _history(store)
    seen: list[int] = []
    before = None
    while True:
        page = await store.load_messages(sid, before_seq=before, tail=2)
        if not page:
            break
        seen[:0] = [m.seq for m in page]
        before = page[0].seq
    assert seen == [m.seq for m in full]


async def test_windows_follow_logical_order_after_compaction(store: Any) -> None:
    sid = await store.create_session()
    for i in range(1, 9):
        await store.append_message(sid, role="user", content=f"m{i}")
    await store.record_compaction(
        sid, from_seq=1, to_seq=4, note_content="sum", before_tokens=None, after_tokens=None,
        round_index=None,
    )  # fmt: skip
    # Active order: note (seq 9, standing where 1 stood), then 5..8.
    assert [m.seq for m in await store.load_messages(sid)] == [9, 5, 6, 7, 8]
    assert [m.seq for m in await store.load_messages(sid, limit=2)] == [9, 5]
    assert [m.seq for m in await store.load_messages(sid, before_seq=6)] == [9, 5]
    assert [m.seq for m in await store.load_messages(sid, after_seq=9, limit=1)] == [5]
    assert [m.seq for m in await store.load_messages(sid, tail=3)] == [6, 7, 8]
    every = await store.load_messages(sid, include_compacted=True)
    assert [m.seq for m in every] == list(range(1, 10))
    assert [m.seq for m in await store.load_messages(sid, include_compacted=True, after_seq=7)] == [
        8, 9,
    ]  # fmt: skip
    assert await store.load_messages("nope") == []


@pytest.mark.parametrize(
    "kwargs",
    [{"limit": 1, "tail": 1}, {"limit": 0}, {"tail": -1}, {"after_seq": "1"},
     {"include_compacted": 1}],
)  # fmt: skip
async def test_bad_windows(store: Any, kwargs: dict[str, Any]) -> None:
    sid = await store.create_session()
    with pytest.raises(InvalidArgument):
        await store.load_messages(sid, **kwargs)


async def test_append_messages_is_atomic(store: Any) -> None:
    sid = await store.create_session()
    assert await store.append_messages(sid, [{"role": "user", "content": "a"}]) == [1]
    seqs = await store.append_messages(
        sid, [{"role": "assistant", "tool_calls": _calls("x")}, {"role": "tool",
              "tool_call_id": "x", "content": "r", "meta": {"ms": 1}}]
    )  # fmt: skip
    assert seqs == [2, 3]
    rows = await store.load_active_messages(sid)
    assert (rows[1].tool_calls, rows[2].meta) == (_calls("x"), {"ms": 1})
    assert await store.append_messages(sid, []) == []
    before = await store.load_all_messages(sid)
    for bad in (
        [{"role": "user"}, {"content": "no role"}],
        [{"role": "user"}, {"role": "user", "colour": "red"}],
        [{"role": "user"}, {"role": "user", "meta": {1: 2}}],
        [{"role": "user"}, "not a dict"],
        # Passes the checks, fails inside the transaction: the first message goes too.
        [{"role": "user", "content": "ok"}, {"role": "user", "content": "\ud800"}],
        {"role": "user"},
    ):
        with pytest.raises(InvalidArgument):
            await store.append_messages(sid, bad)
    with pytest.raises(InvalidArgument):
        await store.append_messages("nope", [{"role": "user"}])
    assert await store.load_all_messages(sid) == before
    assert (await store.get_state(sid)).next_seq == 4
