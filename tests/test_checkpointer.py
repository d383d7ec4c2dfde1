"""WAL checkpoints happen beside the writer, and the log stays bounded under steady writes."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from power_store import AsyncSessionStore
from power_store.sqlite._checkpointer import RESTART_FRAMES


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_log_is_checkpointed_and_restarted_while_writes_continue(file_path: str) -> None:
    async with AsyncSessionStore.open(file_path) as store:
        sessions = [await store.create_session() for _ in range(64)]

        async def agent(sid: str) -> None:
            for i in range(400):
                await store.append_message(sid, role="user", content=f"{i:0200d}")

        await asyncio.gather(*(agent(sid) for sid in sessions))
        # Without restarts these 25,600 appends leave a log of ~50 MiB; with them it stays
        # within a few restart lengths.
        wal_bytes = os.path.getsize(file_path + "-wal")
        assert wal_bytes < 3 * RESTART_FRAMES * 4096
        # The database file only grows by checkpoints: most of the ~10 MB written already
        # reached it while the store was still writing.
        assert os.path.getsize(file_path) > 5_000_000


def _log_frames(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        frames: int = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        return frames
    finally:
        conn.close()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_old_snapshot_held_elsewhere_never_stalls_the_writer(file_path: str) -> None:
    # With a busy timeout far past this test's own, a restart that waited for the reader
    # would hang the writer until the test times out.
    async with AsyncSessionStore.open(file_path, busy_timeout=600) as store:
        sessions = [await store.create_session() for _ in range(64)]

        async def agents(appends: int) -> None:
            async def agent(sid: str) -> None:
                for i in range(appends):
                    await store.append_message(sid, role="user", content=f"{i:0200d}")

            await asyncio.gather(*(agent(sid) for sid in sessions))

        reader = sqlite3.connect(file_path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM messages").fetchone()  # holds its snapshot
            await agents(200)
            # The log could not restart while that snapshot was held...
            assert _log_frames(file_path) > 2 * RESTART_FRAMES
        finally:
            reader.close()
        # ...and it restarts again once the reader is gone (without, it would now hold ~60k).
        await agents(200)
        assert _log_frames(file_path) < 3 * RESTART_FRAMES
