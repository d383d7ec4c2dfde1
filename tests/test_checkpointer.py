"""WAL checkpoints run in the background, off the writer's commits."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from power_store import AsyncSessionStore


def _checkpointed_messages(path: str) -> int:
    # immutable=1 reads the main database file only, ignoring the WAL: it sees exactly what
    # has been checkpointed.
    uri = Path(path).as_uri() + "?immutable=1"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        try:
            count: int = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        except sqlite3.OperationalError:  # table not checkpointed yet
            return 0
        return count


@pytest.mark.asyncio
async def test_commits_reach_the_database_file_while_the_store_runs(file_path: str) -> None:
    async with AsyncSessionStore.open(file_path) as store:
        sid = await store.create_session()
        await asyncio.gather(
            *(store.append_message(sid, role="user", content=str(i)) for i in range(300))
        )
        for _ in range(200):
            if _checkpointed_messages(file_path) == 300:
                break
            await asyncio.sleep(0.02)
        assert _checkpointed_messages(file_path) == 300
