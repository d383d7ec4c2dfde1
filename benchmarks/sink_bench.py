"""One coroutine streaming messages through a sink, against concurrent appends, against awaited
``append_messages`` of ten, and against one awaited commit per message.

    python benchmarks/sink_bench.py [--messages 50000] [--path /tmp/sink_bench.db]

Each workload runs on a fresh file database (WAL, synchronous=NORMAL) and prints messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable

from power_store import AsyncSessionStore, SessionStore


async def sink_stream(store: AsyncSessionStore, sid: str, n: int) -> None:
    sink = store.sink(sid)
    for i in range(n):
        await sink.append_message(role="user", content=f"event {i}")  # queued, not committed
    await sink.flush()


async def concurrent_appends(store: AsyncSessionStore, sid: str, n: int, callers: int = 64) -> None:
    async def caller(count: int) -> None:
        for i in range(count):
            await store.append_message(sid, role="user", content=f"event {i}")

    await asyncio.gather(*(caller(n // callers) for _ in range(callers)))


async def awaited_tens(store: AsyncSessionStore, sid: str, n: int) -> None:
    """One coroutine awaiting ``append_messages`` of 10: one op, one commit, per 10 messages."""
    for start in range(0, n, 10):
        batch = [{"role": "user", "content": f"event {i}"} for i in range(start, start + 10)]
        await store.append_messages(sid, batch)


async def awaited_one_by_one(store: AsyncSessionStore, sid: str, n: int) -> None:
    for i in range(n):
        await store.append_message(sid, role="user", content=f"event {i}")


async def measure(
    directory: str,
    name: str,
    work: Callable[[AsyncSessionStore, str, int], Awaitable[None]],
    n: int,
) -> float:
    path = os.path.join(directory, f"{name}.db")
    async with AsyncSessionStore.open(path) as store:
        sid = await store.create_session()
        started = time.perf_counter()
        await work(store, sid, n)
        elapsed = time.perf_counter() - started
        stats = await store.stats()
        n = len(await store.load_all_messages(sid))  # what was actually written
    rate = n / elapsed
    print(
        f"{name:<22} {n:>7} msgs  {elapsed:6.2f} s  {rate:>9,.0f} msg/s  "
        f"mean batch {stats.mean_batch_size:6.1f}  p99 commit {stats.commit_p99_ms:5.2f} ms"
    )
    return rate


def sync_sink(directory: str, n: int) -> float:
    """The sync facade's sink: one portal hop per call, still no commit wait."""
    with SessionStore.open(os.path.join(directory, "sync.db")) as store:
        sid = store.create_session()
        sink = store.sink(sid)
        started = time.perf_counter()
        for i in range(n):
            sink.append_message(role="user", content=f"event {i}")
        sink.flush()
        elapsed = time.perf_counter() - started
        n = len(store.load_all_messages(sid))  # what was actually written
    print(f"{'sync sink (1 thread)':<22} {n:>7} msgs  {elapsed:6.2f} s  {n / elapsed:>9,.0f} msg/s")
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--one-by-one", type=int, default=5_000, help="messages for that run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        sink = await measure(directory, "sink (1 coroutine)", sink_stream, args.messages)
        conc = await measure(directory, "concurrent", concurrent_appends, args.messages)
        await measure(directory, "append_messages of 10", awaited_tens, args.messages)
        one = await measure(directory, "awaited one by one", awaited_one_by_one, args.one_by_one)
        await asyncio.to_thread(sync_sink, directory, args.messages)
    print(f"sink / concurrent = {sink / conc:.2f}   sink / one-by-one = {sink / one:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
