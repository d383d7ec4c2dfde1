"""Windows over a session's history that never split a tool-call group.

A *tool-call group* is an assistant message carrying ``tool_calls`` followed by the run of
``tool`` messages answering it. A model API rejects a history that starts with a tool result
whose call it never saw, or ends with calls that have no results, so a window that would cut
a group is widened to hold the whole group — by at most the group's size on each edge.

Windows are keyset ranges over the view's order: ``(position, seq)`` for the active history
(a compaction note stands where its range stood), plain ``seq`` with ``include_compacted``.

The algorithm is written once, free of I/O, as a generator (:func:`window`): it yields what it
needs read — an :class:`Anchor` or a :class:`Fetch` — and is sent the answer. Each backend
drives it with its own queries (synchronously on SQLite's connection thread, with ``await`` on
PostgreSQL), so the two can never disagree about which messages a window holds.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

# How many neighbours to fetch at a time while widening; groups are rarely larger.
_WIDEN_STEP = 16

#: A message row (the columns of ``_rows.MESSAGE_COLUMNS``) with its order key's first part
#: (``position`` or ``seq``) appended.
Keyed = Sequence[Any]
Key = tuple[int, int]


@dataclass(frozen=True)
class Anchor:
    """Answer with the order key of message *seq* (an unknown seq sorts where that seq number
    would: ``(seq, seq)``)."""

    seq: int


@dataclass(frozen=True)
class Fetch:
    """Answer with the view's rows with keys in ``(after, before)``, in order (with
    *backwards*: the last *limit* of them, still returned in order)."""

    after: Key | None
    before: Key | None
    limit: int | None
    backwards: bool = False


Request = Anchor | Fetch
Window = Generator[Request, Any, list[Keyed]]


def _key(row: Keyed) -> Key:
    return row[-1], row[1]


def _is_tool(row: Keyed) -> bool:
    return bool(row[2] == "tool")


def _calls_tools(row: Keyed) -> bool:
    return bool(row[2] == "assistant" and row[5])


def _widen(rows: list[Keyed]) -> Generator[Request, Any, None]:
    # Back: a window starting inside a group's results reaches back to the assistant message
    # that made the calls (if there is one; a tool result with no caller stays as it is).
    while rows and _is_tool(rows[0]):
        earlier: list[Keyed] = yield Fetch(None, _key(rows[0]), _WIDEN_STEP, backwards=True)
        if not earlier:
            break
        taken = 0
        for row in reversed(earlier):
            if _is_tool(row):
                taken += 1
                continue
            if _calls_tools(row):
                taken += 1
            break
        if taken == 0:
            break
        rows[:0] = earlier[len(earlier) - taken :]
        if taken < len(earlier) or not _is_tool(rows[0]):
            break
    # Forward: a window ending on the calls, or among their results, takes the rest of them.
    while rows and (_is_tool(rows[-1]) or _calls_tools(rows[-1])):
        later: list[Keyed] = yield Fetch(_key(rows[-1]), None, _WIDEN_STEP)
        results = []
        for row in later:
            if not _is_tool(row):
                break
            results.append(row)
        rows.extend(results)
        if len(results) < _WIDEN_STEP:
            break


def window(
    after_seq: int | None,
    before_seq: int | None,
    limit: int | None,
    tail: int | None,
    include_compacted: bool,
) -> Window:
    """The rows of a :meth:`AsyncSessionStore.load_messages` window (see the module doc)."""

    def anchor(seq: int) -> Generator[Request, Any, Key]:
        if include_compacted:  # the order key is the seq itself
            return seq, seq
        key: Key = yield Anchor(seq)
        return key

    after = None if after_seq is None else (yield from anchor(after_seq))
    before = None if before_seq is None else (yield from anchor(before_seq))
    rows: list[Keyed]
    if tail is not None:
        rows = yield Fetch(after, before, tail, backwards=True)
    else:
        rows = yield Fetch(after, before, limit)
    if limit is not None or tail is not None or after is not None or before is not None:
        yield from _widen(rows)
    return rows
