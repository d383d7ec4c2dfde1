"""Memory workload, run by ``bench.py`` in a child process so its RSS is its own.

64 callers push N appends (each into its own session) through one ``AsyncSessionStore``;
every ``--checkpoint`` appends the process's VmRSS is recorded. Prints one JSON object on
stdout. Not meant to be run by hand, though it can be:

    python benchmarks/_memory_probe.py --db /tmp/m.db --appends 100000 --callers 64
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from typing import Any

from _support import CONTENT, import_power_store, rss_kib


async def run(db: str, appends: int, callers: int, checkpoint: int) -> dict[str, Any]:
    ps, why = import_power_store()
    if ps is None:
        return {"error": why}
    gc.collect()
    rss_before_open, _ = rss_kib()
    store = await ps.AsyncSessionStore.open(db, synchronous="normal")
    try:
        sids = [await store.create_session(model="bench") for _ in range(callers)]
        done = 0
        # (appends done, seconds since start, VmRSS KiB); the first point is after open.
        points: list[tuple[int, float, int]] = [(0, 0.0, rss_kib()[0])]
        start = time.perf_counter()

        async def caller(sid: str, n: int) -> None:
            nonlocal done
            for _ in range(n):
                await store.append_message(sid, role="user", content=CONTENT)
                done += 1
                # One event loop thread: `done` is exact, and the /proc read is rare.
                if done % checkpoint == 0:
                    points.append((done, time.perf_counter() - start, rss_kib()[0]))

        share, rest = divmod(appends, callers)
        await asyncio.gather(
            *(caller(sid, share + (1 if i < rest else 0)) for i, sid in enumerate(sids))
        )
        seconds = time.perf_counter() - start
        if points[-1][0] != done:  # N not a multiple of the checkpoint: still record the end
            points.append((done, seconds, rss_kib()[0]))
    finally:
        await store.close()
    rss_end, hwm = rss_kib()
    return {
        "appends": appends,
        "callers": callers,
        "seconds": seconds,
        "rss_before_open_kib": rss_before_open,
        "rss_after_close_kib": rss_end,
        "peak_rss_kib": hwm,
        "checkpoints": [{"appends": a, "seconds": s, "rss_kib": r} for a, s, r in points],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--appends", type=int, required=True)
    ap.add_argument("--callers", type=int, default=64)
    ap.add_argument("--checkpoint", type=int, required=True)
    args = ap.parse_args()
    out = asyncio.run(run(args.db, args.appends, args.callers, args.checkpoint))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
