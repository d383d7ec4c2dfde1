"""usage_totals, alone and over the subagent tree."""

from __future__ import annotations

from typing import Any

import pytest

from power_store import ModelUsage, SessionNotFound, UsageTotals

pytestmark = pytest.mark.asyncio


async def test_usage_totals_per_model_and_subtree(store: Any) -> None:
    root = await store.create_session()
    child = await store.create_session(parent_session_id=root)
    grandchild = await store.create_session(parent_session_id=child, lifecycle="detached")
    other = await store.create_session()
    for sid, rnd, p, c, model in (
        (root, 0, 10, 5, "big"),
        (root, 1, 20, 10, "big"),
        (root, 2, 1, None, None),
        (child, 0, 100, 50, "small"),
        (grandchild, 0, 1000, 500, "big"),
        (other, 0, 7, 7, "big"),
    ):
        total = None if c is None else p + c
        await store.record_usage(sid, round_index=rnd, prompt_tokens=p, completion_tokens=c,
                                 total_tokens=total, model=model)  # fmt: skip

    alone = await store.usage_totals(root)
    assert alone == UsageTotals(
        session_id=root, prompt_tokens=31, completion_tokens=15, total_tokens=45, rounds=3,
        by_model={None: ModelUsage(1, 0, 0, 1), "big": ModelUsage(30, 15, 45, 2)},
    )  # fmt: skip
    tree = await store.usage_totals(root, include_subagents=True)
    assert (tree.prompt_tokens, tree.completion_tokens, tree.total_tokens, tree.rounds) == (
        1131, 565, 1695, 5,
    )  # fmt: skip
    assert tree.by_model["big"] == ModelUsage(1030, 515, 1545, 3)
    assert tree.by_model["small"] == ModelUsage(100, 50, 150, 1)
    empty = await store.usage_totals(await store.create_session(), include_subagents=True)
    assert (empty.total_tokens, empty.rounds, empty.by_model) == (0, 0, {})
    with pytest.raises(SessionNotFound):
        await store.usage_totals("nope")
