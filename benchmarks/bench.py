"""power_store benchmark: every workload of issue 3 in one process run, side by side.

    python benchmarks/bench.py [--quick] [--json out.json] [--dir DIR] [--only GROUPS]

Prints one table of rates and latencies (p50/p99) and one table of ratios with their targets
(PASS/MISS), and writes the same as JSON. Absolute rates on a shared machine move from run to
run; the ratios within one run are what count. The script never asserts a timing: ``--quick``
exists so CI can run every code path in a few seconds without judging the numbers.

The reference store (power-loop 0.2.0) is imported at run time from
``../shared/reference/power_loop_0_2_0_session_store.py`` (or ``$POWER_STORE_REFERENCE``);
when it is absent its workloads are skipped and their ratios read "reference not found".
See docs/performance.md for what each workload means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import importlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from _support import (
    CONTENT,
    FALLBACK_MESSAGES_SCHEMA,
    FULL,
    QUICK,
    Result,
    Sizes,
    environment,
    import_power_store,
    import_reference,
    latency_result,
    now,
)

#: An awaitable store call by method name: lets one driver run the same pattern on
#: power_store (direct await) and on the reference (asyncio.to_thread).
Call = Callable[..., Awaitable[Any]]

#: Throughput groups, run ``Sizes.best_of`` times each (see there); the limit takes its best
#: of three inside its own workload.
BEST_OF_GROUPS = frozenset(("floor", "w1", "reference", "single", "full", "rounds"))

GROUPS = (
    "limit", "floor", "w1", "reference", "single", "full", "rounds", "reads", "growth", "memory",
)  # fmt: skip


# ── plumbing ────────────────────────────────────────────────────────────────────────────


class Bench:
    """Run-wide settings: sizes, where databases go, and what could be imported."""

    def __init__(self, sizes: Sizes, db_dir: str | None) -> None:
        self.sizes = sizes
        self.db_dir = db_dir
        self.ps, self.ps_why = import_power_store()
        self.ref, self.ref_why = import_reference()

    @contextlib.contextmanager
    def fresh_db(self, name: str) -> Iterator[str]:
        """A database path in its own temporary directory, removed afterwards.

        One directory per workload: no workload sees another's WAL or cache state, and the
        large ones (1M rows) do not pile up on disk.
        """
        with tempfile.TemporaryDirectory(prefix=f"psbench_{name}_", dir=self.db_dir) as d:
            yield os.path.join(d, f"{name}.db")


def store_call(store: Any) -> Call:
    def call(method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return getattr(store, method)(*args, **kwargs)  # type: ignore[no-any-return]

    return call


def to_thread_call(store: Any) -> Call:
    def call(method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return asyncio.to_thread(getattr(store, method), *args, **kwargs)

    return call


def timed(call: Call, latencies: list[float] | None) -> Call:
    """Wrap ``call`` so each await's latency lands in ``latencies`` (when given)."""
    if latencies is None:
        return call

    async def wrapper(method: str, *args: Any, **kwargs: Any) -> Any:
        t0 = now()
        out = await call(method, *args, **kwargs)
        latencies.append(now() - t0)
        return out

    return wrapper


async def drive_appends(
    call: Call, sids: list[str], per_session: int, latencies: list[float] | None
) -> tuple[int, float]:
    """W1's shape: one coroutine per session, each appending ``per_session`` messages."""
    c = timed(call, latencies)

    async def one(sid: str) -> None:
        for _ in range(per_session):
            await c("append_message", sid, role="user", content=CONTENT)

    t0 = now()
    await asyncio.gather(*(one(s) for s in sids))
    return len(sids) * per_session, now() - t0


async def agent_round_pattern(
    call: Call, sid: str, rounds: int, tools: int, latencies: list[float]
) -> int:
    """power-loop's per-round write pattern; returns the number of store calls made."""
    c = timed(call, latencies)
    ops = 0
    for r in range(rounds):
        calls = [
            {
                "id": f"call_{r}_{t}",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "x"}'},
            }
            for t in range(tools)
        ]
        await c("set_round_index", sid, r)
        await c(
            "append_message",
            sid,
            role="assistant",
            content=CONTENT,
            tool_calls=calls,
            round_index=r,
        )
        await c("set_pending", sid, {"tool_calls": calls})
        ops += 3
        for t in range(tools):
            await c(
                "append_message",
                sid,
                role="tool",
                content=CONTENT,
                tool_call_id=calls[t]["id"],
                name="lookup",
                round_index=r,
            )
            left = calls[t + 1 :]
            await c("set_pending", sid, {"tool_calls": left} if left else None)
            ops += 2
        await c(
            "record_usage",
            sid,
            round_index=r,
            prompt_tokens=1000,
            completion_tokens=100,
            total_tokens=1100,
            model="bench",
        )
        ops += 1
    return ops


async def create_sessions(call: Call, n: int) -> list[str]:
    return [await call("create_session", model="bench") for _ in range(n)]


async def prefill(store: Any, sid: str, n: int, callers: int) -> None:
    """Fill one session fast through the store's own appends, many concurrent callers.

    Going through the public API (not raw SQL) keeps the file exactly as the store would
    have written it, whatever its schema; concurrency lets group commit take large batches.
    """
    share, rest = divmod(n, callers)

    async def one(k: int) -> None:
        for _ in range(k):
            await store.append_message(sid, role="user", content=CONTENT)

    await asyncio.gather(*(one(share + (1 if i < rest else 0)) for i in range(callers)))


async def open_store(ps: ModuleType, path: str, synchronous: str = "normal") -> Any:
    return await ps.AsyncSessionStore.open(path, synchronous=synchronous)


def fresh_run(fn: Callable[[], list[Result]]) -> list[Result]:
    gc.collect()  # no run pays for the previous one's garbage
    return fn()


def best_runs(runs: list[list[Result]]) -> list[Result]:
    """Per key, the run with the best rate; every run's rate is kept in its ``extra``."""
    if len(runs) == 1:
        return runs[0]
    best: list[Result] = []
    for same_key in zip(*runs, strict=True):
        assert len({r.key for r in same_key}) == 1, [r.key for r in same_key]
        top = max(same_key, key=lambda r: r.rate or 0.0)
        rates = [round(r.rate or 0.0, 1) for r in same_key]
        best.append(dataclasses.replace(top, extra={**top.extra, "runs_per_s": rates}))
    return best


# ── workloads: one function each ────────────────────────────────────────────────────────


def w_limit(b: Bench) -> list[Result]:
    """Plain sqlite3: W1's rows in one executemany, one transaction, the reference schema.

    Best of three fresh files: the limit is a ceiling, and 12,800 rows take only tens of ms,
    so one run is at the mercy of a neighbour's burst on a shared machine.
    """
    s = b.sizes
    schema_sql = b.ref.SCHEMA_SQL if b.ref is not None else FALLBACK_MESSAGES_SCHEMA
    schema = "reference SCHEMA_SQL" if b.ref is not None else "fallback (reference not found)"
    sids = [f"sess_{i:024x}" for i in range(s.w1_sessions)]
    ts = time.time_ns() // 1_000_000
    # Rows are built before the clock starts: the limit is what SQLite itself can take.
    # Interleaved by seq, the order in which W1's concurrent callers arrive.
    rows = [
        (sid, seq, "user", None, CONTENT, None, None, None, "active", "{}", ts)
        for seq in range(1, s.w1_appends + 1)
        for sid in sids
    ]
    runs: list[float] = []
    for i in range(3):
        with b.fresh_db(f"limit{i}") as path:
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(schema_sql)
                t0 = now()
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO messages (session_id, seq, role, name, content,"
                    " tool_calls_json, tool_call_id, round_index, state, meta_json, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
                conn.execute("COMMIT")
                runs.append(now() - t0)
            finally:
                conn.close()
    return [
        Result(
            "limit",
            "limit: sqlite3 executemany, 1 txn (best of 3)",
            len(rows),
            min(runs),
            extra={"schema": schema, "runs_s": runs},
        )
    ]


def w_floor(b: Bench) -> list[Result]:
    """The store's own W1 batches replayed with bare sqlite3: the ceiling for W1.

    W1's 64 callers each wait for their write, so a commit can never hold more than 64 rows;
    this replays exactly the statements the writer runs for such a batch (imported from the
    store, so the floor cannot drift from the code), 64 rows per transaction, with nothing of
    the store around them: no event loop, no thread hand-off, no validation. W1 can only come
    near this, never pass it; "floor / limit" says how much of the limit any group commit of
    64 one-write callers can reach on this machine.
    """
    s = b.sizes
    ops = importlib.import_module("power_store.sqlite._apply")
    batch = importlib.import_module("power_store.sqlite._batch")

    async def make_sessions(path: str) -> list[str]:
        store = await open_store(b.ps, path)  # type: ignore[arg-type]
        try:
            return await create_sessions(store_call(store), s.w1_sessions)
        finally:
            await store.close()

    with b.fresh_db("floor") as path:
        sids = asyncio.run(make_sessions(path))
        ts = time.time_ns() // 1_000_000
        # Everything is built before the clock starts, as for the limit.
        row = ("user", None, CONTENT, None, None, None, "{}", ts)
        batches = [
            (
                [(sid, seq, *row, seq) for sid in sids],
                [(seq + 1, sid) for sid in sids],
                # A new millisecond per batch, as W1's batches (milliseconds apart) get: the
                # writer skips a session already stamped with the batch's millisecond.
                [(ts + seq, sid, ts + seq) for sid in sids],
            )
            for seq in range(1, s.w1_appends + 1)
        ]
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            seconds = 0.0
            for i, (inserts, next_seqs, touched) in enumerate(batches):
                t0 = now()
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(ops._INSERT_MESSAGE, inserts)
                conn.executemany(batch._UPDATE_NEXT_SEQ, next_seqs)
                conn.executemany(batch._UPDATE_TOUCHED, touched)
                conn.execute("COMMIT")
                seconds += now() - t0
                if i % 16 == 15:
                    # Off the clock: the store restarts its log beside the batches too.
                    conn.execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            conn.close()
    rows = s.w1_sessions * s.w1_appends
    return [Result("floor", "floor: W1's 64-row batches, bare sqlite3", rows, seconds)]


def w_w1(b: Bench, synchronous: str) -> list[Result]:
    """W1: 64 sessions x 200 appends, one coroutine per session, on AsyncSessionStore."""
    s = b.sizes

    async def run() -> Result:
        with b.fresh_db(f"w1_{synchronous}") as path:
            store = await open_store(b.ps, path, synchronous)  # type: ignore[arg-type]
            try:
                sids = await create_sessions(store_call(store), s.w1_sessions)
                lat: list[float] = []
                ops, seconds = await drive_appends(store_call(store), sids, s.w1_appends, lat)
            finally:
                await store.close()
        return latency_result(
            f"w1_{synchronous}",
            f"W1 {s.w1_sessions}x{s.w1_appends} async, synchronous={synchronous}",
            ops,
            seconds,
            lat,
        )

    return [asyncio.run(run())]


def w_reference(b: Bench) -> list[Result]:
    """The reference store: W1 through asyncio.to_thread, and 5,000 appends from one thread."""
    s, ref = b.sizes, b.ref
    assert ref is not None
    out: list[Result] = []

    async def via_to_thread() -> Result:
        with b.fresh_db("ref_w1") as path:
            store = ref.SessionStore.open(path)
            try:
                call = to_thread_call(store)
                sids = await create_sessions(call, s.w1_sessions)
                lat: list[float] = []
                ops, seconds = await drive_appends(call, sids, s.w1_appends, lat)
            finally:
                store.close()
        # The default executor (min(32, cpus + 4) threads) is what a power-loop user gets.
        return latency_result(
            "ref_w1_to_thread",
            f"reference W1 {s.w1_sessions}x{s.w1_appends} via to_thread",
            ops,
            seconds,
            lat,
            executor_threads=min(32, (os.cpu_count() or 1) + 4),
        )

    out.append(asyncio.run(via_to_thread()))

    with b.fresh_db("ref_seq") as path:
        seconds, lat = sequential_appends(ref.SessionStore.open(path), s.single_appends)
    out.append(
        latency_result(
            "ref_sequential", "reference sequential, one thread", s.single_appends, seconds, lat
        )
    )
    return out


def sequential_appends(store: Any, count: int) -> tuple[float, list[float]]:
    """*count* appends to one session from this thread, then close: (seconds, latencies)."""
    try:
        sid = store.create_session(model="bench")
        lat: list[float] = []
        t0 = now()
        for _ in range(count):
            t1 = now()
            store.append_message(sid, role="user", content=CONTENT)
            lat.append(now() - t1)
        return now() - t0, lat
    finally:
        store.close()


def w_single(b: Bench) -> list[Result]:
    """One caller, sequential appends: the async store, then the sync facade."""
    s, ps = b.sizes, b.ps
    assert ps is not None

    async def single_async() -> Result:
        with b.fresh_db("single_async") as path:
            store = await open_store(ps, path)
            try:
                sid = await store.create_session(model="bench")
                # The same loop as the reference's sequential run: a direct call, timed.
                lat: list[float] = []
                t0 = now()
                for _ in range(s.single_appends):
                    t1 = now()
                    await store.append_message(sid, role="user", content=CONTENT)
                    lat.append(now() - t1)
                seconds = now() - t0
            finally:
                await store.close()
        return latency_result(
            "single_async", "single caller, async store", s.single_appends, seconds, lat
        )

    out = [asyncio.run(single_async())]

    # The facade is called from plain synchronous code, outside any event loop, as a script
    # would; its own loop runs in the facade's portal thread.
    with b.fresh_db("single_sync") as path:
        seconds, lat = sequential_appends(ps.SessionStore.open(path), s.single_appends)
    out.append(
        latency_result("single_sync", "single caller, sync facade", s.single_appends, seconds, lat)
    )
    return out


def w_rounds(b: Bench) -> list[Result]:
    """Agent rounds (2N+4 calls per round) on power_store and on the reference via to_thread."""
    s = b.sizes
    out: list[Result] = []
    label = f"{s.agents} agents x {s.rounds} rounds x {s.tools} tools"

    async def run(key: str, what: str, use_ref: bool) -> Result:
        with b.fresh_db(key) as path:
            if use_ref:
                assert b.ref is not None
                ref_store = b.ref.SessionStore.open(path)
                call, close = to_thread_call(ref_store), ref_store.close
            else:
                store = await open_store(b.ps, path)  # type: ignore[arg-type]
                call, close = store_call(store), store.close
            try:
                sids = await create_sessions(call, s.agents)
                lat: list[float] = []
                t0 = now()
                counts = await asyncio.gather(
                    *(agent_round_pattern(call, sid, s.rounds, s.tools, lat) for sid in sids)
                )
                seconds = now() - t0
            finally:
                res = close()
                if asyncio.iscoroutine(res):
                    await res
        return latency_result(
            key,
            f"{what}: {label}",
            sum(counts),
            seconds,
            lat,
            unit="calls",
            rounds_per_s=s.agents * s.rounds / seconds,
        )

    if b.ps is not None:
        out.append(asyncio.run(run("rounds", "agent rounds, async store", use_ref=False)))
    if b.ref is not None:
        out.append(
            asyncio.run(run("ref_rounds", "agent rounds, reference via to_thread", use_ref=True))
        )
    return out


def w_reads(b: Bench) -> list[Result]:
    """get_session and load_active_messages (200 messages): idle, then while W1 runs."""
    s = b.sizes

    async def sample(
        store: Any, sid: str, n: int
    ) -> tuple[list[float], list[float], list[float], float]:
        get_lat: list[float] = []
        load_lat: list[float] = []
        # The event loop's own scheduling delay: what any await pays on this loop, reads
        # included. Under W1 the 64 writers keep the loop busy, and this is the floor.
        lag: list[float] = []
        t_start = now()
        for _ in range(n):
            t_lag = now()
            await asyncio.sleep(0)
            lag.append(now() - t_lag)
            t0 = now()
            await store.get_session(sid)
            t1 = now()
            rows = await store.load_active_messages(sid)
            t2 = now()
            assert len(rows) == s.read_history, len(rows)
            get_lat.append(t1 - t0)
            load_lat.append(t2 - t1)
        return get_lat, load_lat, lag, now() - t_start

    async def run() -> list[Result]:
        with b.fresh_db("reads") as path:
            store = await open_store(b.ps, path)  # type: ignore[arg-type]
            try:
                sid = await store.create_session(model="bench")
                await prefill(store, sid, s.read_history, callers=1)  # keep seq order simple
                writers = await create_sessions(store_call(store), s.w1_sessions)

                idle_get, idle_load, idle_lag, idle_s = await sample(store, sid, s.read_samples)

                # Under load: W1 rounds back to back until the reader has all its samples, so
                # every sample is taken while the 64 writers are busy.
                stop = asyncio.Event()
                load_ops = 0

                async def load() -> None:
                    nonlocal load_ops
                    while not stop.is_set():
                        n, _ = await drive_appends(store_call(store), writers, s.w1_appends, None)
                        load_ops += n

                t_load = now()
                task = asyncio.create_task(load())
                await asyncio.sleep(0.005)  # let the 64 writers get their first ops queued
                busy_get, busy_load, busy_lag, busy_s = await sample(store, sid, s.read_samples)
                stop.set()
                await task
                load_s = now() - t_load
            finally:
                await store.close()
        n = s.read_samples
        w_rate = load_ops / load_s
        return [
            latency_result("read_get_idle", "get_session, idle", n, idle_s, idle_get, unit="reads"),
            latency_result(
                "read_get_busy",
                "get_session, under W1",
                n,
                busy_s,
                busy_get,
                unit="reads",
                writer_appends_per_s=w_rate,
            ),
            latency_result(
                "read_load_idle",
                f"load_active_messages({s.read_history}), idle",
                n,
                idle_s,
                idle_load,
                unit="reads",
            ),
            latency_result(
                "read_load_busy",
                f"load_active_messages({s.read_history}), under W1",
                n,
                busy_s,
                busy_load,
                unit="reads",
                writer_appends_per_s=w_rate,
            ),
            latency_result(
                "loop_lag_idle",
                "await asyncio.sleep(0), idle",
                n,
                sum(idle_lag),
                idle_lag,
                unit="awaits",
            ),
            latency_result(
                "loop_lag_busy",
                "await asyncio.sleep(0), under W1",
                n,
                sum(busy_lag),
                busy_lag,
                unit="awaits",
            ),
        ]

    return asyncio.run(run())


def w_growth(b: Bench) -> list[Result]:
    """Append rate into a 100k-message session vs a 1k one; load 500 active of ~100k."""
    s = b.sizes

    async def run() -> list[Result]:
        with b.fresh_db("growth") as path:
            store = await open_store(b.ps, path)  # type: ignore[arg-type]
            try:
                big = await store.create_session(model="bench")
                small = await store.create_session(model="bench")
                t0 = now()
                await prefill(store, big, s.growth_big, s.growth_callers)
                await prefill(store, small, s.growth_small, s.growth_callers)
                prefill_rate = (s.growth_big + s.growth_small) / (now() - t0)

                # Same file, same moment: only the session's size differs. Alternate the two
                # and repeat so drift on a shared machine hits both alike.
                lat: dict[str, list[float]] = {small: [], big: []}
                secs = {small: 0.0, big: 0.0}
                ops = {small: 0, big: 0}
                for _ in range(s.growth_repeats):
                    for sid in (small, big):
                        n, dt = await drive_appends(
                            store_call(store),
                            [sid] * s.growth_callers,
                            s.growth_appends_per_caller,
                            lat[sid],
                        )
                        ops[sid] += n
                        secs[sid] += dt
                big_total = s.growth_big + ops[big]

                # Compact all but the newest `load_active` messages of the big session, and
                # build a fresh session of the same active size to compare loads against.
                to_seq = big_total - s.load_active
                await store.record_compaction(
                    big,
                    from_seq=1,
                    to_seq=to_seq,
                    note_content="summary " + CONTENT,
                    before_tokens=to_seq * 50,
                    after_tokens=50,
                    round_index=0,
                )
                fresh = await store.create_session(model="bench")
                await prefill(store, fresh, s.load_active, callers=1)

                load_lat: dict[str, list[float]] = {big: [], fresh: []}
                load_secs = {big: 0.0, fresh: 0.0}
                for _ in range(s.load_samples):
                    for sid in (fresh, big):
                        t1 = now()
                        await store.load_active_messages(sid)
                        dt = now() - t1
                        load_lat[sid].append(dt)
                        load_secs[sid] += dt
                active_big = len(await store.load_active_messages(big))
            finally:
                await store.close()
        return [
            latency_result(
                "append_1k",
                f"append into {s.growth_small:,}-msg session",
                ops[small],
                secs[small],
                lat[small],
                prefill_appends_per_s=prefill_rate,
            ),
            latency_result(
                "append_100k",
                f"append into {s.growth_big:,}-msg session",
                ops[big],
                secs[big],
                lat[big],
            ),
            latency_result(
                "load_fresh",
                f"load fresh {s.load_active}-msg session",
                s.load_samples,
                load_secs[fresh],
                load_lat[fresh],
                unit="loads",
            ),
            latency_result(
                "load_compacted",
                f"load {s.load_active} active of {to_seq:,} compacted",
                s.load_samples,
                load_secs[big],
                load_lat[big],
                unit="loads",
                compacted=to_seq,
                active_rows_returned=active_big,
            ),
        ]

    return asyncio.run(run())


def w_memory(b: Bench) -> list[Result]:
    """Peak RSS of a child process while 64 callers push 1M appends (see _memory_probe.py)."""
    s = b.sizes
    probe = Path(__file__).with_name("_memory_probe.py")
    with b.fresh_db("memory") as path:
        proc = subprocess.run(
            [
                sys.executable,
                str(probe),
                "--db",
                path,
                "--appends",
                str(s.memory_appends),
                "--callers",
                str(s.memory_callers),
                "--checkpoint",
                str(s.memory_checkpoint),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        # The child's traceback goes to our stderr; the error keeps only its last line.
        sys.stderr.write(proc.stderr[-4000:])
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory probe exited {proc.returncode}: {last}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    if "error" in data:
        raise RuntimeError(data["error"])
    points = data["checkpoints"]
    # "Flat after warm-up": RSS at the end against RSS at the first checkpoint at or past
    # 20% of the appends (the warm-up covers caches, the queue and the allocator settling).
    mark = next(p for p in points if p["appends"] >= 0.2 * data["appends"])
    end = points[-1]
    flat = end["rss_kib"] / mark["rss_kib"] if mark["rss_kib"] else None
    return [
        Result(
            "memory",
            f"memory: {s.memory_callers} callers push {s.memory_appends:,} appends",
            data["appends"],
            data["seconds"],
            extra={
                "peak_rss_mb": data["peak_rss_kib"] / 1024,
                "rss_at_20pct_mb": mark["rss_kib"] / 1024,
                "rss_at_end_mb": end["rss_kib"] / 1024,
                "rss_end_over_20pct": flat,
                "checkpoints": [
                    {
                        "appends": p["appends"],
                        "seconds": round(p["seconds"], 3),
                        "rss_mb": round(p["rss_kib"] / 1024, 1),
                    }
                    for p in points
                ],
            },
        )
    ]


# ── ratios ──────────────────────────────────────────────────────────────────────────────


@dataclass
class Target:
    label: str
    num: str
    den: str | None  # None: the value is read from num's extra[metric]
    metric: str  # "rate", "p50", "p99", or an extra key
    op: str  # ">=" or "<=", or "" for a ratio shown for context, with no target
    bound: float | None = None


TARGETS = [
    Target("W1 / limit", "w1_normal", "limit", "rate", ">=", 0.50),
    # Context for the line above: how much of the limit 64-row commits allow at all, and how
    # near the store comes to that.
    Target("  batch floor / limit (context)", "floor", "limit", "rate", ""),
    Target("  W1 / batch floor (context)", "w1_normal", "floor", "rate", ""),
    Target("W1 / reference via to_thread", "w1_normal", "ref_w1_to_thread", "rate", ">=", 10),
    Target("W1 FULL / W1 NORMAL", "w1_full", "w1_normal", "rate", ">=", 0.6),
    Target(
        "single async / reference sequential", "single_async", "ref_sequential", "rate", ">=", 0.7
    ),
    Target(
        "single sync facade / reference sequential",
        "single_sync",
        "ref_sequential",
        "rate",
        ">=",
        0.4,
    ),
    Target("agent rounds / reference via to_thread", "rounds", "ref_rounds", "rate", ">=", 8),
    Target("get_session p99: under W1 / idle", "read_get_busy", "read_get_idle", "p99", "<=", 3),
    Target(
        "load_active_messages p99: under W1 / idle",
        "read_load_busy",
        "read_load_idle",
        "p99",
        "<=",
        3,
    ),
    Target("append rate: at 100k / at 1k", "append_100k", "append_1k", "rate", ">=", 0.8),
    Target(
        "load p50: 500 of 100k compacted / fresh 500",
        "load_compacted",
        "load_fresh",
        "p50",
        "<=",
        2,
    ),
    # Flat RSS, made a number: RSS at the end over RSS at the 20% mark; 10% slack for the
    # allocator and SQLite's page cache filling up to its (bounded) size.
    Target("peak RSS flat: RSS end / RSS at 20%", "memory", None, "rss_end_over_20pct", "<=", 1.10),
]


def metric(r: Result, name: str) -> float | None:
    if name == "rate":
        return r.rate
    if name == "p50":
        return r.p50_ms
    if name == "p99":
        return r.p99_ms
    v = r.extra.get(name)
    return float(v) if v is not None else None


def evaluate(t: Target, results: dict[str, Result], missing: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "measure": t.label,
        "target": f"{t.op} {t.bound:g}" if t.bound is not None else "-",
        "value": None,
        "status": "n/a",
        "note": "",
    }
    for key in (t.num, t.den):
        if key is not None and key not in results:
            row["note"] = missing.get(key, f"{key} not run")
            return row
    a = metric(results[t.num], t.metric)
    b = metric(results[t.den], t.metric) if t.den else 1.0
    if a is None or not b:
        row["note"] = "no data"
        return row
    value = a / b
    row["value"] = value
    if t.bound is None:
        row["status"] = "info"
        return row
    ok = value >= t.bound if t.op == ">=" else value <= t.bound
    row["status"] = "PASS" if ok else "MISS"
    return row


# ── output ──────────────────────────────────────────────────────────────────────────────


def print_table(headers: list[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(fmt(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r))


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def workload_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        note = ""
        if r.key == "memory":
            e = r.extra
            note = (
                f"peak {e['peak_rss_mb']:.0f} MB; RSS {e['rss_at_20pct_mb']:.0f} MB at 20%"
                f" -> {e['rss_at_end_mb']:.0f} MB at end"
            )
        elif "writer_appends_per_s" in r.extra:
            note = f"writers {r.extra['writer_appends_per_s']:,.0f} appends/s"
        elif "rounds_per_s" in r.extra:
            note = f"{r.extra['rounds_per_s']:,.0f} rounds/s"
        elif "prefill_appends_per_s" in r.extra:
            note = f"prefill {r.extra['prefill_appends_per_s']:,.0f} appends/s"
        if "runs_per_s" in r.extra:
            runs = " / ".join(f"{rate:,.0f}" for rate in r.extra["runs_per_s"])
            note = f"{note}; best of {runs}" if note else f"best of {runs}"
        rows.append(
            [
                r.key,
                r.label,
                f"{r.ops:,}",
                f"{r.seconds:.3f}",
                "-" if r.rate is None else f"{r.rate:,.0f} {r.unit}/s",
                _num(r.p50_ms, ".3f"),
                _num(r.p99_ms, ".3f"),
                note,
            ]
        )
    return rows


def ratio_rows(ratios: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [r["measure"], _num(r["value"], ".2f"), r["target"], r["status"], r["note"]] for r in ratios
    ]


# ── main ────────────────────────────────────────────────────────────────────────────────


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a few seconds, for CI")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    ap.add_argument("--dir", metavar="DIR", help="where temporary databases go (default: TMPDIR)")
    ap.add_argument(
        "--only",
        metavar="GROUPS",
        help=f"comma-separated subset of: {','.join(GROUPS)} (default: all)",
    )
    args = ap.parse_args(argv)
    only = set(GROUPS if not args.only else args.only.split(","))
    unknown = only - set(GROUPS)
    if unknown:
        ap.error(f"unknown groups: {', '.join(sorted(unknown))}")

    b = Bench(QUICK if args.quick else FULL, args.dir)
    env = environment()
    print(
        f"power_store benchmark ({'quick' if args.quick else 'full'}): python {env['python']},"
        f" SQLite {env['sqlite']}, aiosqlite {env['aiosqlite']}, {env['cpus']} CPUs"
    )
    print(f"power_store: {b.ps_why}; reference: {b.ref_why}")

    # Which result keys each group produces, and what each needs: a missing requirement
    # becomes the reason shown in place of a ratio.
    plan: list[tuple[str, list[str], Callable[[], list[Result]], list[str]]] = [
        ("limit", ["limit"], lambda: w_limit(b), []),
        ("floor", ["floor"], lambda: w_floor(b), ["ps"]),
        ("w1", ["w1_normal"], lambda: w_w1(b, "normal"), ["ps"]),
        ("reference", ["ref_w1_to_thread", "ref_sequential"], lambda: w_reference(b), ["ref"]),
        ("single", ["single_async", "single_sync"], lambda: w_single(b), ["ps"]),
        ("full", ["w1_full"], lambda: w_w1(b, "full"), ["ps"]),
        ("rounds", ["rounds", "ref_rounds"], lambda: w_rounds(b), []),
        (
            "reads",
            ["read_get_idle", "read_get_busy", "read_load_idle", "read_load_busy"],
            lambda: w_reads(b),
            ["ps"],
        ),
        (
            "growth",
            ["append_1k", "append_100k", "load_fresh", "load_compacted"],
            lambda: w_growth(b),
            ["ps"],
        ),
        ("memory", ["memory"], lambda: w_memory(b), ["ps"]),
    ]
    reasons = {
        "ps": b.ps_why if b.ps is None else None,
        "ref": b.ref_why if b.ref is None else None,
    }
    results: list[Result] = []
    missing: dict[str, str] = {}
    errors: list[str] = []
    for group, keys, fn, needs in plan:
        if group not in only:
            missing.update(dict.fromkeys(keys, f"{group} not selected"))
            continue
        why = next((reasons[n] for n in needs if reasons[n]), None)
        if why:
            missing.update(dict.fromkeys(keys, why))
            print(f"- {group}: skipped ({why})")
            continue
        t0 = now()
        try:
            runs = b.sizes.best_of if group in BEST_OF_GROUPS else 1
            got = best_runs([fresh_run(fn) for _ in range(runs)])
        except Exception as exc:
            # One broken workload must not hide the others' numbers; the run still exits 1.
            msg = f"{group} failed: {type(exc).__name__}: {exc}"
            errors.append(msg)
            # The full message is printed once here; ratio notes keep a short form.
            missing.update(dict.fromkeys(keys, f"{group} failed: {type(exc).__name__}"))
            print(f"- {msg}")
            traceback.print_exc(file=sys.stderr)
            continue
        results.extend(got)
        # A group that runs whichever side is importable (rounds) names the absent side.
        produced = {r.key for r in got}
        for k in keys:
            if k not in produced:
                missing[k] = "; ".join(r for r in reasons.values() if r) or "not produced"
        print(f"- {group}: {now() - t0:.1f} s")

    by_key = {r.key: r for r in results}
    ratios = [evaluate(t, by_key, missing) for t in TARGETS]

    print()
    print_table(
        ["key", "workload", "ops", "seconds", "rate", "p50 ms", "p99 ms", "note"],
        workload_rows(results),
        right={2, 3, 4, 5, 6},
    )
    print()
    print_table(["ratio", "value", "target", "status", "note"], ratio_rows(ratios), right={1})
    misses = [r["measure"] for r in ratios if r["status"] == "MISS"]
    print(
        f"\n{sum(r['status'] == 'PASS' for r in ratios)} PASS, {len(misses)} MISS,"
        f" {sum(r['status'] == 'n/a' for r in ratios)} n/a (timings are reported, never"
        " asserted)"
    )

    if args.json:
        doc = {
            "quick": args.quick,
            "environment": env,
            "power_store": b.ps_why,
            "reference": b.ref_why,
            "sizes": dataclasses.asdict(b.sizes),
            "workloads": [r.as_json() for r in results],
            "ratios": ratios,
            "errors": errors,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
