"""Child process of ``test_crash.py``: streams writes into a store until it is killed.

``python crash_child.py PATH PREFIX SEED`` opens the store, then runs agents concurrently —
each a round loop of appends, pending updates, round indexes, usage and now and then a
compaction — plus extra coroutines appending at random. After each write is acknowledged (its
``await`` returned) it prints one JSON line and flushes, so every line the parent reads is a
write the store promised to keep. ``python crash_child.py PATH --open-only`` just opens (and so
migrates) the file, printing ``opening`` before and ``open`` after.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from typing import Any

from power_store import AsyncSessionStore, InvalidCompactionRange


def emit(**record: Any) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


async def agent(store: AsyncSessionStore, sid: str, prefix: str, rng: random.Random) -> None:
    pending_n = 0
    compacted_to = 0
    acked: list[int] = []
    for rnd in range(1, 1_000_000):
        await store.set_round_index(sid, rnd)
        emit(op="round", sid=sid, round=rnd)
        calls = [{"id": f"{prefix}-{rnd}-{k}", "function": {"name": "f"}} for k in range(3)]
        content = f"{prefix}:{sid}:assistant:{rnd}"
        seq = await store.append_message(sid, role="assistant", content=content,
                                         tool_calls=calls, round_index=rnd)  # fmt: skip
        emit(op="append", sid=sid, seq=seq, role="assistant", content=content)
        acked.append(seq)
        for left in range(len(calls), -1, -1):
            pending_n += 1
            await store.set_pending(sid, {"n": pending_n, "left": [c["id"] for c in calls[:left]]})
            emit(op="pending", sid=sid, n=pending_n)
            if left:
                content = f"{prefix}:{sid}:tool:{rnd}:{left}:" + "r" * rng.randrange(2000)
                seq = await store.append_message(sid, role="tool", content=content,
                                                 tool_call_id=calls[left - 1]["id"])  # fmt: skip
                emit(op="append", sid=sid, seq=seq, role="tool", content=content)
                acked.append(seq)
        await store.record_usage(sid, round_index=rnd, prompt_tokens=rnd, completion_tokens=1,
                                 total_tokens=rnd + 1)  # fmt: skip
        if rnd % 3 == 0 and len(acked) > 6:
            # Compact a stretch of this session, chatter included, that ends at an acked seq.
            to_seq = acked[-3]
            if to_seq > compacted_to:
                note = f"{prefix}:{sid}:note:{rnd}"
                try:
                    compact_seq, note_seq = await store.record_compaction(
                        sid, from_seq=compacted_to + 1, to_seq=to_seq, note_content=note,
                        before_tokens=100, after_tokens=10, round_index=rnd,
                    )  # fmt: skip
                except InvalidCompactionRange:
                    pass
                else:
                    emit(op="compact", sid=sid, compact_seq=compact_seq, note_seq=note_seq,
                         from_seq=compacted_to + 1, to_seq=to_seq, note=note)  # fmt: skip
                    compacted_to = to_seq


async def chatter(store: AsyncSessionStore, sid: str, tag: str, rng: random.Random) -> None:
    for i in range(1_000_000):
        content = f"{tag}:{i}:" + "c" * rng.randrange(300)
        seq = await store.append_message(sid, role="user", content=content)
        emit(op="append", sid=sid, seq=seq, role="user", content=content)
        if rng.random() < 0.2:
            await asyncio.sleep(0)


async def main(path: str, prefix: str, seed: int) -> None:
    rng = random.Random(seed)
    emit(op="opening")
    store = await AsyncSessionStore.open(path)
    emit(op="open")
    roots = []
    for r in range(3):
        sid = await store.create_session(session_id=f"{prefix}-root{r}", metadata={"r": r})
        emit(op="create", sid=sid)
        roots.append(sid)
    children = []
    for r, parent in enumerate(roots[:2]):
        sid = await store.create_session(session_id=f"{prefix}-child{r}", parent_session_id=parent,
                                         lifecycle="linked")  # fmt: skip
        emit(op="create", sid=sid)
        children.append(sid)
    tasks = []
    for sid in roots + children:
        tasks.append(agent(store, sid, prefix, random.Random(rng.random())))
        for k in range(6):
            tasks.append(
                chatter(store, sid, f"{prefix}:{sid}:chat{k}", random.Random(rng.random()))
            )
    await asyncio.gather(*tasks)


async def open_only(path: str) -> None:
    emit(op="opening")
    store = await AsyncSessionStore.open(path)
    emit(op="open")
    await store.close()


if __name__ == "__main__":
    if sys.argv[2] == "--open-only":
        asyncio.run(open_only(sys.argv[1]))
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
