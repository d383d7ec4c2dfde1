"""Child process of ``test_processes.py``: two stores on one file, appending concurrently.

``python process_child.py PATH INDEX WRITES SHARED_ID...`` opens two stores on PATH, creates one
session per store, prints ``ready``, waits for a line on stdin, then from 4 coroutines per store
appends WRITES messages spread over the shared sessions and the store's own session. It prints
one JSON document: every acknowledged write as ``[session_id, seq, content]`` and every error
that reached a caller.
"""

from __future__ import annotations

import asyncio
import json
import sys

from power_store import AsyncSessionStore


async def main(path: str, index: int, writes: int, shared: list[str]) -> None:
    stores = [await AsyncSessionStore.open(path) for _ in range(2)]
    own = [await store.create_session(session_id=f"p{index}s{k}") for k, store in enumerate(stores)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    acked: list[tuple[str, int, str]] = []
    errors: list[str] = []

    async def writer(k: int, store: AsyncSessionStore, c: int) -> None:
        targets = [*shared, own[k]]
        for i in range(writes // 4):
            sid = targets[i % len(targets)]
            content = f"p{index}s{k}c{c}:{i}"
            try:
                seq = await store.append_message(sid, role="user", content=content)
                acked.append((sid, seq, content))
                if i % 10 == 0:
                    await store.set_pending(sid, {"by": content})
                    await store.record_usage(sid, round_index=i, prompt_tokens=1,
                                             completion_tokens=1, total_tokens=2)  # fmt: skip
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(writer(k, store, c) for k, store in enumerate(stores) for c in range(4)))
    for store in stores:
        await store.close()
    print(json.dumps({"acked": acked, "errors": errors}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]))
