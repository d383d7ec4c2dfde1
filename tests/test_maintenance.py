"""prune, checkpoint, vacuum and online backup."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import is_sync

from power_store import (
    AsyncSessionStore,
    CheckpointResult,
    InvalidArgument,
    NotSupported,
    PruneResult,
)

pytestmark = pytest.mark.asyncio


async def test_prune(store: Any) -> None:
    old = await store.create_session()
    old_child = await store.create_session(parent_session_id=old, lifecycle="linked")
    keep_archived = await store.create_session()
    live = await store.create_session()
    orphan_parent = await store.create_session()
    orphan = await store.create_session(parent_session_id=orphan_parent)  # ephemeral
    kept_detached = await store.create_session(parent_session_id=orphan_parent,
                                               lifecycle="detached")  # fmt: skip
    await store.archive_session(old)
    await asyncio.sleep(0.01)
    cutoff = time.time_ns() // 1_000_000
    await asyncio.sleep(0.01)
    await store.archive_session(keep_archived)
    await store.close_session(orphan_parent, cascade=False)  # unlinks orphan and kept_detached

    assert await store.prune() == PruneResult(0, 0)
    assert await store.prune(archived_before=cutoff) == PruneResult(2, 0)
    assert await store.get_session(old) is None
    assert await store.get_session(old_child) is None
    assert await store.prune(orphaned_subagents=True) == PruneResult(1, 0)
    assert await store.get_session(orphan) is None
    remaining = {s.session_id for s in (await store.list_sessions()).sessions}
    assert remaining == {keep_archived, live, kept_detached}

    # Compacted originals go; notes (even swallowed ones) and the audit stay.
    for i in range(6):
        await store.append_message(live, role="user", content=f"m{i}")
    await store.record_compaction(live, from_seq=1, to_seq=3, note_content="n1",
                                  before_tokens=1, after_tokens=1, round_index=0)  # fmt: skip
    await store.record_compaction(live, from_seq=4, to_seq=7, note_content="n2",
                                  before_tokens=1, after_tokens=1, round_index=0)  # fmt: skip
    before = await store.load_active_messages(live)
    assert await store.prune(compacted_before=0) == PruneResult(0, 0)
    assert await store.prune(compacted_before=time.time_ns() // 1_000_000 + 1000) == (
        PruneResult(0, 6)
    )
    assert [m.seq for m in await store.load_all_messages(live)] == [7, 8]
    assert await store.load_active_messages(live) == before
    assert len(await store.list_compactions(live)) == 2
    with pytest.raises(InvalidArgument):
        await store.prune(archived_before="2020")


async def test_checkpoint_and_vacuum(store: Any) -> None:
    sid = await store.create_session()
    await store.append_messages(sid, [{"role": "user", "content": "x" * 1000}] * 50)
    if store.backend == "postgres":  # PostgreSQL checkpoints its own log
        with pytest.raises(NotSupported, match="checkpoint"):
            await store.checkpoint("truncate")
    else:
        result = await store.checkpoint("truncate")
        assert isinstance(result, CheckpointResult)
        assert not result.busy
    await store.close_session(sid)
    await store.vacuum()
    assert await store.count_sessions() == 0
    with pytest.raises(InvalidArgument):
        await store.checkpoint("everything; DROP TABLE sessions")


async def _check_backup(copy: AsyncSessionStore, sids: list[str]) -> None:
    # One snapshot: every session's state agrees with the messages it holds.
    for sid in sids:
        state = await copy.get_state(sid)
        assert state is not None
        assert state.next_seq == len(await copy.load_all_messages(sid)) + 1
    assert len(await copy.load_all_messages(sids[0])) >= 2000


async def test_backup_is_consistent_while_writes_go_on(store: Any, tmp_path: Path) -> None:
    sids = [await store.create_session() for _ in range(4)]
    await store.append_messages(sids[0], [{"role": "user", "content": "y" * 500}] * 2000)
    stop = threading.Event()
    written = 0

    async def keep_writing() -> None:
        nonlocal written
        while not stop.is_set():
            await store.append_message(sids[written % 4], role="user", content="during")
            written += 1
            await asyncio.sleep(0)

    if is_sync(store):  # the sync facade blocks its caller: write from another thread
        thread = threading.Thread(target=lambda: asyncio.run(keep_writing()))
        thread.start()
        await asyncio.sleep(0.05)
        await store.backup(tmp_path / "copy.db")
        stop.set()
        thread.join()
    else:
        task = asyncio.ensure_future(keep_writing())
        await asyncio.sleep(0.05)
        await store.backup(tmp_path / "copy.db")
        stop.set()
        await task
    assert written > 0
    dest = tmp_path / "copy.db"
    if store.backend == "postgres":
        # A PostgreSQL backup is an export of every session: restore it into a new store.
        async with AsyncSessionStore.open(tmp_path / "restored.db") as copy:
            with dest.open(encoding="utf-8") as lines:
                assert sorted(await copy.import_session(lines)) == sorted(sids)
            await _check_backup(copy, sids)
        with pytest.raises(InvalidArgument):
            await store.backup(dest)  # never overwrites
        return
    with contextlib.closing(sqlite3.connect(dest)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    async with AsyncSessionStore.open(dest) as copy:
        await _check_backup(copy, sids)
    with pytest.raises(InvalidArgument):
        await store.backup(dest)  # never overwrites
