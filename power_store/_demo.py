"""``python -m power_store demo``: a small fleet of agents streaming into one database."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ._models import SubagentLifecycle
from ._store import AsyncSessionStore

DEMO_DB_PATH = "./power_store_demo.db"
_LIFECYCLES = (SubagentLifecycle.EPHEMERAL, SubagentLifecycle.LINKED, SubagentLifecycle.DETACHED)


@dataclass
class Tally:
    sessions: int = 0
    subagents: int = 0
    messages: int = 0
    writes: int = 0
    compactions: int = 0
    roots: list[str] = field(default_factory=list)


async def _run_agent(
    store: AsyncSessionStore,
    tally: Tally,
    rng: random.Random,
    *,
    rounds: int,
    tools: int,
    parent: str | None = None,
    depth: int = 0,
) -> str:
    lifecycle = rng.choice(_LIFECYCLES) if parent else SubagentLifecycle.EPHEMERAL
    sid = await store.create_session(
        system_prompt="You are a helpful agent.",
        model="demo-model",
        parent_session_id=parent,
        spawn_tool_call_id=f"call_spawn_{depth}" if parent else None,
        lifecycle=lifecycle,
        metadata={"demo": True, "depth": depth},
    )
    tally.sessions += 1
    tally.subagents += parent is not None
    await store.append_message(sid, role="user", content="Solve the task, use tools.")
    tally.messages += 1
    tally.writes += 2
    for round_index in range(rounds):
        await store.set_round_index(sid, round_index)
        calls: list[dict[str, Any]] = [
            {"id": f"call_{round_index}_{t}", "type": "function",
             "function": {"name": "search", "arguments": f'{{"q": "item {t}"}}'}}
            for t in range(tools)
        ]  # fmt: skip
        await store.append_message(
            sid, role="assistant", content=None, tool_calls=calls, round_index=round_index
        )
        # Pending tool calls are what a crashed agent would resume from.
        await store.set_pending(sid, {"tool_calls": calls})
        tally.writes += 3
        tally.messages += 1
        for done, call in enumerate(calls, start=1):
            if depth < 2 and rng.random() < 0.05:
                child = await _run_agent(
                    store, tally, rng, rounds=2, tools=1, parent=sid, depth=depth + 1
                )
                row = await store.get_session(child)
                if row is not None and row.lifecycle is SubagentLifecycle.EPHEMERAL:
                    await store.close_session(child)
                    tally.writes += 1
            await store.append_message(
                sid, role="tool", content=f"result {rng.random():.6f}", tool_call_id=call["id"],
                name="search", round_index=round_index,
            )  # fmt: skip
            remaining = calls[done:]
            await store.set_pending(sid, {"tool_calls": remaining} if remaining else None)
            tally.writes += 2
            tally.messages += 1
        await store.record_usage(
            sid, round_index=round_index, prompt_tokens=900 + 40 * round_index,
            completion_tokens=120, total_tokens=1020 + 40 * round_index, model="demo-model",
        )  # fmt: skip
        tally.writes += 1
        if round_index == rounds // 2:
            state = await store.get_state(sid)
            assert state is not None
            await store.record_compaction(
                sid, from_seq=2, to_seq=state.next_seq - 1, note_content="Summary so far.",
                before_tokens=5000, after_tokens=300, round_index=round_index,
            )  # fmt: skip
            tally.compactions += 1
            tally.writes += 1
    return sid


async def run_demo(path: str, *, agents: int, rounds: int, tools: int, seed: int) -> str:
    rng = random.Random(seed)
    tally = Tally()
    async with AsyncSessionStore.open(path) as store:
        started = time.perf_counter()
        tally.roots = list(
            await asyncio.gather(
                *(_run_agent(store, tally, rng, rounds=rounds, tools=tools) for _ in range(agents))
            )
        )
        elapsed = time.perf_counter() - started
        sample = tally.roots[0]
        history = await store.load_active_messages(sample)
        state = await store.get_state(sample)
        children = await store.list_children(sample)
        location = store.path
    assert state is not None
    return "\n".join(
        [
            f"power_store demo: {agents} agents x {rounds} rounds x {tools} tool calls",
            f"  sessions created : {tally.sessions} ({tally.subagents} subagents)",
            f"  messages written : {tally.messages}  (compactions: {tally.compactions})",
            f"  writes committed : {tally.writes} in {elapsed:.2f} s "
            f"= {tally.writes / elapsed:,.0f} writes/s",
            f"  agent {sample}: {len(history)} active messages, round {state.round_index}, "
            f"pending {state.pending}, {len(children)} live subagents",
            f"  database file    : {location}",
        ]
    )
