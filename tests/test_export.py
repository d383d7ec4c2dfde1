"""export_session / import_session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import collect, is_sync

from power_store import AsyncSessionStore, InvalidArgument, SessionExists, SessionNotFound

pytestmark = pytest.mark.asyncio


async def _tree(store: Any) -> tuple[str, str]:
    root = await store.create_session(system_prompt="sp", config={"a": [1, 2]},
                                      metadata={"ü": "ñ"})  # fmt: skip
    child = await store.create_session(parent_session_id=root, spawn_tool_call_id="c1")
    for sid in (root, child):
        await store.append_message(sid, role="user", content="hi \u2603")
        await store.append_message(sid, role="assistant", tool_calls=[{"id": "c1"}])
        await store.append_message(sid, role="tool", tool_call_id="c1", content="r")
    await store.record_compaction(root, from_seq=1, to_seq=2, note_content="sum",
                                  before_tokens=5, after_tokens=1, round_index=1)  # fmt: skip
    await store.record_usage(root, round_index=1, prompt_tokens=3, completion_tokens=None,
                             total_tokens=3, model="m")  # fmt: skip
    await store.set_pending(child, {"x": 1})
    fork = await store.fork_session(root, at_seq=3)
    return root, fork


async def test_round_trip_is_byte_identical(store: Any) -> None:
    root, fork = await _tree(store)
    lines = await collect(store, "export_session", root)
    header = json.loads(lines[0])
    assert header == {"type": "header", "format": "power_store.sessions", "version": 1,
                      "session_id": root, "sessions": 2}  # fmt: skip
    kinds = [json.loads(line)["type"] for line in lines[1:]]
    order = ["session", "message", "compaction", "usage", "state"]
    assert kinds == sorted(kinds, key=order.index)
    assert all(line.endswith("\n") for line in lines)
    async with AsyncSessionStore.open(":memory:") as empty:
        assert await empty.import_session(lines) == [root, await _child(store, root)]
        again = [line async for line in empty.export_session(root)]
        assert again == lines
        assert await empty.load_active_messages(root) == await store.load_active_messages(root)
        # Conflicts: nothing is written with "error"; "replace" rewrites the same rows.
        with pytest.raises(SessionExists):
            await empty.import_session(lines)
        await empty.append_message(root, role="user", content="extra")
        await empty.import_session(lines, on_conflict="replace")
        assert [line async for line in empty.export_session(root)] == lines
    fork_lines = await collect(store, "export_session", fork, include_subagents=False)
    assert json.loads(fork_lines[1])["forked_from"] == root
    alone = await collect(store, "export_session", root, include_subagents=False)
    assert json.loads(alone[0])["sessions"] == 1


async def test_round_trip_across_backends_is_byte_identical(pg_target: str) -> None:
    """SQLite -> PostgreSQL -> SQLite: the same bytes at every step."""
    async with AsyncSessionStore.open(":memory:") as lite:
        root, _ = await _tree(lite)
        await lite.append_message(root, role="user", content="big", meta={"n": 2**62, "f": 0.1},
                                  round_index=2**62)  # fmt: skip
        lines = [line async for line in lite.export_session(root)]
        async with AsyncSessionStore.open(pg_target) as pg:
            assert await pg.import_session(lite.export_session(root)) == [
                root, await _child(lite, root),
            ]  # fmt: skip
            assert [line async for line in pg.export_session(root)] == lines
            assert await pg.load_active_messages(root) == await lite.load_active_messages(root)
            assert await pg.usage_totals(root) == await lite.usage_totals(root)
            async with AsyncSessionStore.open(":memory:") as back:
                await back.import_session(pg.export_session(root))
                assert [line async for line in back.export_session(root)] == lines


async def _child(store: Any, root: str) -> str:
    return str((await store.list_children(root))[0].session_id)


async def test_import_into_this_store_after_delete(store: Any) -> None:
    root, _ = await _tree(store)
    lines = await collect(store, "export_session", root)
    await store.close_session(root)
    assert await store.get_session(root) is None
    await store.import_session(lines)
    assert await collect(store, "export_session", root) == lines
    assert await store.append_message(root, role="user") == 5  # next_seq came back too


async def test_an_export_streams_straight_into_an_import(store: Any) -> None:
    root, _ = await _tree(store)
    lines = await collect(store, "export_session", root)
    if is_sync(store):
        # The facade's export is a blocking iterator calling into this very store: it must be
        # read in the caller's thread, not on the store's loop thread (which would hang).
        imported = store.sync.import_session(store.sync.export_session(root), on_conflict="replace")
    else:
        imported = await store.import_session(store.export_session(root), on_conflict="replace")
        async with AsyncSessionStore.open(":memory:") as other:
            assert await other.import_session(store.export_session(root)) == imported
            assert await collect(other, "export_session", root) == lines
    assert imported == [root, await _child(store, root)]
    assert await collect(store, "export_session", root) == lines


async def test_bad_imports_change_nothing(store: Any) -> None:
    root, _ = await _tree(store)
    lines = await collect(store, "export_session", root)
    await store.close_session(root)
    header, session, *rest = lines
    bad_version = header.replace('"version":1', '"version":2')
    message = next(line for line in rest if '"type":"message"' in line)
    for bad in (
        [],
        ["not json\n"],
        [session, header],
        [bad_version, *lines[1:]],
        [header, message],  # a message before its session
        [header, session.replace('"status":"active"', '"status":"zombie"'), *rest],
        [header, session.replace('"spawn_depth":0', '"spawn_depth":"0"'), *rest],
        [header, session.replace('"model":null', '"model":null,"extra":1'), *rest],
        [header, session, session, *rest],
        [line for line in lines if '"type":"state"' not in line],
        "".join(lines),
    ):
        with pytest.raises(InvalidArgument):
            await store.import_session(bad)
    assert await store.count_sessions() == 1  # only the fork, which was not exported
    with pytest.raises(InvalidArgument):
        await store.import_session(lines, on_conflict="merge")
    with pytest.raises(SessionNotFound):
        await collect(store, "export_session", "nope")


async def test_an_export_whose_first_read_failed_reads_again(store: Any) -> None:
    export = store.sync.export_session("later") if is_sync(store) else store.export_session("later")
    with pytest.raises(SessionNotFound):
        next(export) if is_sync(store) else await export.__anext__()
    await store.create_session(session_id="later")
    lines = list(export) if is_sync(store) else [line async for line in export]
    assert json.loads(lines[0])["session_id"] == "later"
    assert len(lines) == 3  # header, session, state


async def test_an_export_whose_first_read_was_cancelled_reads_again() -> None:
    async with AsyncSessionStore.open(":memory:") as store:
        sid = await store.create_session()
        export = store.export_session(sid)
        first = asyncio.ensure_future(export.__anext__())
        await asyncio.sleep(0)  # the read is under way on the connection's thread
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert len([line async for line in export]) == 3
