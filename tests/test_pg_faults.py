"""PostgreSQL faults: the writer's connection killed mid-load, and lost during COMMIT.

Every caller gets its result or a typed error, nothing is torn or written twice, and the store
recovers by itself. ``POWER_STORE_PG_KILLS`` sets how many times the writer's backend is
terminated (default 5; ``nox -s pg_faults`` runs 50).
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from typing import Any

import asyncpg
import pytest
from conftest import sql_rows

from power_store import AsyncSessionStore, PowerStoreError

pytestmark = pytest.mark.asyncio

KILLS = int(os.environ.get("POWER_STORE_PG_KILLS", "5"))


async def _check_store(target: str, acked: list[tuple[str, int, str]]) -> None:
    """Every acknowledged append is stored at its seq; per session seqs are gapless, no
    content twice, and next_seq is right after the last."""
    by_session: dict[str, dict[int, str]] = defaultdict(dict)
    for sid, seq, content in acked:
        assert seq not in by_session[sid]
        by_session[sid][seq] = content
    for sid, expected in by_session.items():
        stored = dict(await sql_rows(target, "SELECT seq, content FROM messages "
                                             "WHERE session_id = ?", sid))  # fmt: skip
        assert expected.items() <= stored.items()  # every ack is there, at its seq
        assert sorted(stored) == list(range(1, len(stored) + 1))
        assert len(set(stored.values())) == len(stored)  # nothing written twice
        ((next_seq,),) = await sql_rows(
            target, "SELECT next_seq FROM session_state WHERE session_id = ?", sid
        )
        assert next_seq == len(stored) + 1


async def test_writer_backend_killed_mid_load(pg_target: str) -> None:
    async with AsyncSessionStore.open(pg_target) as store:
        sids = [await store.create_session() for _ in range(8)]
        acked: list[tuple[str, int, str]] = []
        errors: list[BaseException] = []
        writing = True

        async def append(c: int) -> None:
            i = 0
            while writing:
                sid, content = sids[(c + i) % len(sids)], f"c{c}-{i}"
                i += 1
                try:
                    acked.append(
                        (
                            sid,
                            await store.append_message(sid, role="user", content=content),
                            content,
                        )
                    )
                except PowerStoreError as exc:  # typed, never anything else
                    errors.append(exc)

        dsn = pg_target.partition("?")[0]
        killer = await asyncpg.connect(dsn)
        writers = [asyncio.create_task(append(c)) for c in range(16)]
        try:
            for _ in range(KILLS):
                await asyncio.sleep(0.05)
                pid = store._backend.writer.backend_pid
                if pid is not None:
                    await killer.execute("SELECT pg_terminate_backend($1)", pid)
            await asyncio.sleep(0.1)
        finally:
            writing = False
            await asyncio.gather(*writers)
            await killer.close()
        print(f"\nkills: {KILLS}, acknowledged: {len(acked)}, typed errors: {len(errors)}, "
              f"reconnects: {store._backend.writer.reconnects}")  # fmt: skip
        assert errors == []  # a lost connection never reaches a caller while it can reconnect
        assert store._backend.writer.reconnects >= 1
        # The store recovered by itself: the next write commits.
        assert await store.append_message(sids[0], role="user", content="after") >= 1
        acked_after = len(acked)
    assert acked_after > 0
    await _check_store(pg_target, acked)


class _DropAtCommit:
    """The writer's connection, losing itself where a batch commits — at COMMIT, or in the one
    statement of an appends-only batch — after the commit landed (``committed=True``), or
    before it was sent."""

    def __init__(self, conn: Any, committed: bool) -> None:
        self._conn = conn
        self._committed = committed
        self.dropped: str | None = None  # where: "COMMIT" or "appends"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def _drop(self, where: str, run: Any) -> Any:
        self.dropped = where
        if self._committed:
            await run()
        self._conn.terminate()  # an open transaction dies with its connection
        raise asyncpg.ConnectionDoesNotExistError("connection lost while committing (test)")

    async def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and not self.dropped:
            return await self._drop("COMMIT", lambda: self._conn.execute(sql))
        return await self._conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        if "row_no" in sql and not self.dropped:  # the appends-only batch statement
            return await self._drop("appends", lambda: self._conn.fetch(sql, *args))
        return await self._conn.fetch(sql, *args)


@pytest.mark.parametrize("committed", [True, False], ids=["landed", "lost"])
@pytest.mark.parametrize("batch", ["appends", "mixed"])
async def test_connection_lost_while_committing_is_resolved_exactly_once(
    pg_target: str, committed: bool, batch: str
) -> None:
    async with AsyncSessionStore.open(pg_target) as store:
        sid = await store.create_session()
        writer = store._backend.writer
        proxy = _DropAtCommit(writer._conn, committed)
        writer._conn = proxy
        writes = [store.append_message(sid, role="user", content=f"m{i}") for i in range(20)]
        if batch == "mixed":  # not appends only: the general path, with its COMMIT
            writes.insert(0, store.set_round_index(sid, 3))
        results = await asyncio.gather(*writes)
        seqs = results[-20:]
        assert proxy.dropped == ("COMMIT" if batch == "mixed" else "appends")
        assert sorted(seqs) == list(range(1, 21))  # each caller learned the truth
        assert writer.reconnects == 1
        stored = [m.content for m in await store.load_all_messages(sid)]
        assert sorted(stored) == sorted(f"m{i}" for i in range(20))  # once each
    await _check_store(pg_target, [(sid, s, f"m{i}") for i, s in enumerate(seqs)])
