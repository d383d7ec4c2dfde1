"""W1 at the batch level on PostgreSQL: power_store's run_batch against the bare asyncpg floor.

W1 = 64 producers x 200 appends of 200 bytes, each producer to its own session, each append
awaited before the next. A minimal writer loop takes whatever is queued (up to 1,000 ops) into
one run_batch and resolves the producers' futures after COMMIT. The floor: one connection, the
same 12,800 rows in 64-row transactions of executemany INSERTs, nothing else.

    POWER_STORE_PG_DSN=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/pg_batch_bench.py [--rounds 3] [--profile]

--profile wraps the writer's connection to count round trips per batch. CPU per append is
reported for this process and for the connection's server backend (read from /proc, so only
when the server runs on this machine): on a shared machine it is steadier than wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections import deque
from typing import Any

import asyncpg

from power_store._models import SessionKind, SubagentLifecycle
from power_store._ops import AppendMessage, CreateSession, WriteOp
from power_store.postgres._batch import run_batch
from power_store.postgres._schema import migrate, render, schema_identifier

PRODUCERS = 64
APPENDS = 200
CONTENT = "x" * 200
MAX_BATCH = 1000


def backend_cpu(conn: Any) -> float:
    """CPU seconds used so far by *conn*'s server process (0.0 when it is not on this host)."""
    try:
        with open(f"/proc/{conn.get_server_pid()}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cpu:
    """Client and server CPU per append over a measured stretch."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.client = time.process_time()
        self.server = backend_cpu(conn)

    def per_append_us(self, appends: int) -> dict[str, float]:
        return {
            "client_cpu_us": (time.process_time() - self.client) / appends * 1e6,
            "server_cpu_us": (backend_cpu(self.conn) - self.server) / appends * 1e6,
        }


class CountingConn:
    """Counts the statements (= round trips) sent through a connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name in ("execute", "fetch", "fetchval", "fetchrow"):

            async def counted(*args: Any) -> Any:
                self.calls += 1
                return await attr(*args)

            return counted
        return attr


async def w1_power_store(dsn: str, schema: str, profile: bool) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    writer_conn: Any = CountingConn(conn) if profile else conn
    sessions = [f"w1_{uuid.uuid4().hex[:8]}_{i}" for i in range(PRODUCERS)]
    creates: list[WriteOp] = [
        CreateSession(s, None, None, None, None, None, SessionKind.ROOT,
                      SubagentLifecycle.EPHEMERAL, None)
        for s in sessions
    ]  # fmt: skip
    made = await run_batch(
        conn, schema, creates, max_spawn_depth=3, batch_id=uuid.uuid4().hex, channel="bench"
    )
    assert all(error is None for error, _ in made), made[0]
    queue: deque[tuple[WriteOp, asyncio.Future[Any]]] = deque()
    wake = asyncio.Event()
    stop = False
    sizes: list[int] = []
    latencies: list[float] = []

    async def writer() -> None:
        while not stop or queue:
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            taken = [queue.popleft() for _ in range(min(len(queue), MAX_BATCH))]
            sizes.append(len(taken))
            outcomes = await run_batch(
                writer_conn,
                schema,
                [op for op, _ in taken],
                max_spawn_depth=3,
                batch_id=uuid.uuid4().hex,
                channel="bench",
            )
            for (_, fut), (error, value) in zip(taken, outcomes, strict=True):
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(value)

    async def producer(sid: str) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(APPENDS):
            fut: asyncio.Future[Any] = loop.create_future()
            started = time.perf_counter()
            queue.append((AppendMessage(sid, "user", None, CONTENT, None, None, None, None), fut))
            wake.set()
            await fut
            latencies.append(time.perf_counter() - started)

    task = asyncio.create_task(writer())
    cpu = Cpu(conn)
    started = time.perf_counter()
    await asyncio.gather(*(producer(s) for s in sessions))
    elapsed = time.perf_counter() - started
    cpu_used = cpu.per_append_us(PRODUCERS * APPENDS)
    stop = True
    wake.set()
    await task
    stored = await conn.fetchval(
        render("SELECT count(*) FROM {s}.messages WHERE session_id = ANY($1)", schema), sessions
    )
    assert stored == PRODUCERS * APPENDS, stored
    await conn.close()
    latencies.sort()
    result = {
        "appends_s": PRODUCERS * APPENDS / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "mean_batch": statistics.mean(sizes),
        "batches": len(sizes),
        **cpu_used,
    }
    if profile:
        result["round_trips_per_batch"] = writer_conn.calls / len(sizes)
    return result


async def floor(dsn: str, schema: str) -> dict[str, float]:
    """The same rows, 64-row transactions, executemany INSERTs only."""
    conn = await asyncpg.connect(dsn)
    sql = render(
        "INSERT INTO {s}.messages (session_id, seq, role, content, created_at, position) "
        "VALUES ($1, $2, 'user', $3, $4, $2)",
        schema,
    )
    tag = uuid.uuid4().hex[:8]
    cpu = Cpu(conn)
    started = time.perf_counter()
    for seq in range(1, APPENDS + 1):
        now = time.time_ns() // 1_000_000
        async with conn.transaction():
            await conn.executemany(
                sql, [(f"floor_{tag}_{i}", seq, CONTENT, now) for i in range(PRODUCERS)]
            )
    elapsed = time.perf_counter() - started
    cpu_used = cpu.per_append_us(PRODUCERS * APPENDS)
    await conn.close()
    return {"appends_s": PRODUCERS * APPENDS / elapsed, **cpu_used}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    dsn = os.environ.get("POWER_STORE_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"ps_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    await migrate(admin, schema)
    try:
        ours, floors = [], []
        for r in range(args.rounds):
            # Alternate the order so neither side always runs on a warmer server.
            if r % 2:
                floors.append(await floor(dsn, schema))
                ours.append(await w1_power_store(dsn, schema, args.profile))
            else:
                ours.append(await w1_power_store(dsn, schema, args.profile))
                floors.append(await floor(dsn, schema))
            show = lambda d: " ".join(f"{k}={v:,.1f}" for k, v in d.items())  # noqa: E731
            print(f"round {r + 1}: run_batch {show(ours[-1])}", flush=True)
            print(f"         floor     {show(floors[-1])}", flush=True)
        ps = statistics.median(o["appends_s"] for o in ours)
        fl = statistics.median(f["appends_s"] for f in floors)
        print(f"\nmedian of {args.rounds} rounds:")
        print(f"  W1 run_batch        {ps:>9,.0f} appends/s")
        print(f"  bare asyncpg floor  {fl:>9,.0f} rows/s (64-row transactions, executemany)")
        print(f"  ratio               {ps / fl:.2f} x (target >= 0.5)")
        for name, runs in (("run_batch", ours), ("floor", floors)):
            client = statistics.median(o["client_cpu_us"] for o in runs)
            server = statistics.median(o["server_cpu_us"] for o in runs)
            print(f"  CPU per append, {name:<9}  client {client:5.1f} us  server {server:5.1f} us")
    finally:
        await admin.execute(f"DROP SCHEMA {schema_identifier(schema)} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
