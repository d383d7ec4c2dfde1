"""4 processes, 2 stores each, on one database (a SQLite file, a PostgreSQL schema): no lock
error (SQLite's "database is locked", PostgreSQL's deadlock or serialization failure) reaches
a caller, and per session the seqs are unique and gapless with each caller's content at the
seq it got back.

``POWER_STORE_PROCESS_WRITES`` sets the appends per store (default 200). Run with ``-s`` to see
the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from conftest import sql_rows

from power_store import AsyncSessionStore

CHILD = str(Path(__file__).with_name("process_child.py"))
PROCESSES = 4
WRITES = int(os.environ.get("POWER_STORE_PROCESS_WRITES", "200"))
SHARED = ["shared-a", "shared-b"]


def query(target: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    return asyncio.run(sql_rows(target, sql, *args))


async def _create_shared(path: str) -> None:
    async with AsyncSessionStore.open(path) as store:
        for sid in SHARED:
            await store.create_session(session_id=sid)


def test_many_processes_share_one_database_without_errors_or_gaps(target: str) -> None:
    asyncio.run(_create_shared(target))
    children = [
        subprocess.Popen(
            [sys.executable, CHILD, target, str(i), str(WRITES), *SHARED],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        for child in children:  # every store is open before anyone writes
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n", child.stderr
        outputs = [child.communicate("go\n", timeout=300) for child in children]
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait()
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]

    errors = [e for r in results for e in r["errors"]]
    acked = [tuple(a) for r in results for a in r["acked"]]
    print(f"\nprocesses: {PROCESSES} x 2 stores, acknowledged appends: {len(acked)}, "
          f"errors reaching callers: {len(errors)}")  # fmt: skip
    assert errors == []
    assert len(acked) == PROCESSES * 2 * 4 * (WRITES // 4)

    by_session: dict[str, dict[int, str]] = defaultdict(dict)
    for sid, seq, content in acked:
        assert seq not in by_session[sid], (sid, seq)  # no seq handed out twice
        by_session[sid][seq] = content
    for sid, expected in by_session.items():
        stored = dict(query(target, "SELECT seq, content FROM messages WHERE session_id = ?", sid))
        assert stored == expected  # each caller's content at the seq it got back
        assert sorted(stored) == list(range(1, len(stored) + 1))  # gapless
        ((next_seq,),) = query(target, "SELECT next_seq FROM session_state WHERE session_id = ?",
                               sid)  # fmt: skip
        assert next_seq == len(stored) + 1
    assert set(by_session) == {*SHARED, *(f"p{i}s{k}" for i in range(PROCESSES) for k in (0, 1))}
