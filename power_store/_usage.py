"""Token usage summed per session, or over a session and all its subagents."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelUsage:
    """Token counts of the rounds recorded with one model (a missing count adds 0)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    rounds: int = 0


@dataclass(frozen=True)
class UsageTotals:
    """What :meth:`AsyncSessionStore.usage_totals` returns."""

    session_id: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    #: Usage rows summed: one per (session, round).
    rounds: int
    #: The same sums per model; rounds recorded without a model are under ``None``.
    by_model: dict[str | None, ModelUsage] = field(default_factory=dict)


def totals(session_id: str, rows: Iterable[Sequence[Any]]) -> UsageTotals:
    """UsageTotals from rows of (model, prompt, completion, total, rounds) sums per model."""
    by_model = {r[0]: ModelUsage(r[1], r[2], r[3], r[4]) for r in rows}
    return UsageTotals(
        session_id=session_id,
        prompt_tokens=sum(m.prompt_tokens for m in by_model.values()),
        completion_tokens=sum(m.completion_tokens for m in by_model.values()),
        total_tokens=sum(m.total_tokens for m in by_model.values()),
        rounds=sum(m.rounds for m in by_model.values()),
        by_model=by_model,
    )
