"""A storm of concurrent writes with 30 % of their awaits cancelled at random moments.

Every write is all-or-nothing: an append's content is absent or stored exactly once at a
consistent seq, a compaction is wholly there (audit row, note, range compacted out) or not at
all, seqs stay gapless, and the store goes on working and closes promptly.
``POWER_STORE_STORM_WRITES`` sets the number of writes (default 3000); run with ``-s`` for the
figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from typing import Any

import pytest

from power_store import AsyncSessionStore, InvalidArgument

pytestmark = pytest.mark.asyncio

WRITES = int(os.environ.get("POWER_STORE_STORM_WRITES", "3000"))


async def test_cancellation_storm_tears_nothing(db_path: str) -> None:
    rng = random.Random(os.environ.get("POWER_STORE_STORM_SEED", time.time_ns()))
    store = await AsyncSessionStore.open(db_path, max_queue=256)  # some wait on a full queue
    sessions = [await store.create_session() for _ in range(8)]
    for sid in sessions:
        for i in range(20):
            await store.append_message(sid, role="user", content=f"seed {i}")

    loop = asyncio.get_running_loop()
    submitted: list[tuple[str, str, dict[str, Any], asyncio.Task[Any]]] = []
    for n in range(WRITES):
        sid = rng.choice(sessions)
        kind = rng.choices(["append", "compact", "pending"], [80, 5, 15])[0]
        if kind == "append":
            # Now and then a large one, so batches spend a while on the writer thread and
            # more cancellations land while their op is in flight.
            padding = " " * 200_000 if rng.random() < 0.02 else ""
            args = {"role": "user", "content": f"storm {n}{padding}"}
            coro = store.append_message(sid, **args)
        elif kind == "compact":
            first = rng.randrange(1, 40)
            args = {"from_seq": first, "to_seq": first + rng.randrange(8),
                    "note_content": f"note {n}"}  # fmt: skip
            coro = store.record_compaction(sid, **args, before_tokens=1, after_tokens=1,
                                           round_index=0)  # fmt: skip
        else:
            args = {"pending": {"n": n}}
            coro = store.set_pending(sid, args["pending"])
        task = asyncio.create_task(coro)
        submitted.append((kind, sid, args, task))
        if rng.random() < 0.3:
            # Before the task first runs, while it is queued, while its batch runs, or after.
            if rng.random() < 0.3:
                loop.call_soon(task.cancel)
            else:
                loop.call_later(rng.uniform(0, 0.1), task.cancel)
        if rng.random() < 0.05:
            await asyncio.sleep(0)
    await asyncio.gather(*(t for *_, t in submitted), return_exceptions=True)

    figures: Counter[str] = Counter()
    torn = 0
    for sid in sessions:
        every = await store.load_all_messages(sid)
        seqs = [m.seq for m in every]
        assert seqs == list(range(1, len(every) + 1))  # gapless, unique
        assert (await store.get_state(sid)).next_seq == len(every) + 1
        at = {m.content: m for m in every}
        counts = Counter(m.content for m in every)
        compactions = {c.note_seq: c for c in await store.list_compactions(sid)}
        notes = {m.seq: m for m in every if m.name == "compact_note"}
        # Every audit row has its note and vice versa; every recorded range is compacted out.
        assert set(compactions) == set(notes)
        for c in compactions.values():
            assert notes[c.note_seq].meta["from_seq"] == c.from_seq
            assert notes[c.note_seq].meta["to_seq"] == c.to_seq
            inside = [m for m in every if c.from_seq <= m.seq <= c.to_seq]
            assert all(m.state.value == "compacted_out" for m in inside)
        for kind, s, args, task in submitted:
            if s != sid:
                continue
            cancelled = task.cancelled()
            figures["cancelled awaits"] += cancelled
            failed = not cancelled and task.exception() is not None
            if failed:
                assert isinstance(task.exception(), InvalidArgument), task.exception()
            if kind == "append":
                content = args["content"]
                written = counts[content]
                if written > 1:
                    torn += 1
                if not cancelled:
                    assert written == 1
                    assert at[content].seq == task.result()
            elif kind == "compact":
                note = at.get(args["note_content"])
                written = note is not None
                if written and (counts[args["note_content"]] != 1 or note.seq not in compactions):
                    torn += 1
                if not cancelled:
                    assert written == (not failed)
                    if written:
                        assert task.result() == (compactions[note.seq].compact_seq, note.seq)
            else:
                continue
            if cancelled:
                outcome = "written (taken before cancel)" if written else "dropped"
                figures[f"cancelled {kind}, {outcome}"] += 1
        pending = (await store.get_state(sid)).pending
        assert pending is None or any(
            k == "pending" and s == sid and a["pending"] == pending for k, s, a, _ in submitted
        )
    figures["writes"] = len(submitted)
    figures["torn writes"] = torn
    print(f"\nstorm figures: {json.dumps(dict(sorted(figures.items())))}")
    assert torn == 0
    assert figures["cancelled awaits"] > 0

    # The writer survived: a new write lands right after everything above, then close is prompt
    # (wait_for only turns a hang into a failure; nothing is timed).
    after = await store.append_message(sessions[0], role="user", content="after the storm")
    assert after == (await store.get_state(sessions[0])).next_seq - 1
    pending_writes = [
        asyncio.create_task(store.append_message(sessions[1], role="user", content=str(i)))
        for i in range(200)
    ]
    await asyncio.sleep(0)
    for task in pending_writes[::3]:
        task.cancel()
    await asyncio.wait_for(store.close(), timeout=30)
    results = await asyncio.gather(*pending_writes, return_exceptions=True)
    assert all(isinstance(r, (int, asyncio.CancelledError)) for r in results), results
