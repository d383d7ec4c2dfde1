"""The common batch — appends only — as ONE statement, in one round trip.

A general batch (:mod:`._batch`) costs four round trips: BEGIN, the ordered lock, the writes,
COMMIT. A batch of nothing but appends needs no decision in Python between the lock and the
writes: the seqs follow from each session's ``next_seq`` and the appends' queue order. So the
whole batch is one statement run in its own implicit transaction:

* ``locked`` — the sessions' ``session_state`` rows, locked in session-id order (writers on
  several hosts that lock in different orders deadlock);
* ``numbered`` — each appended row gets ``next_seq + its rank within its session``, in queue
  order; rows of unknown sessions drop out, and their ops fail with :class:`SessionNotFound`;
* the messages, ``next_seq``, ``updated_at``, the batch's row in ``batches`` (with the seqs it
  handed out, for a writer that loses its connection before the answer arrives) and the
  NOTIFY, as data-modifying CTEs of the same statement.

If the statement fails as a whole (a value PostgreSQL refuses, such as NUL in text), nothing
of it was written, and the batch takes the general path, which isolates the culprit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from .._errors import SessionNotFound
from .._ops import AppendMessage, AppendMessages, WriteOp
from .._writer import Outcome
from ._schema import render

# $1-$8 the rows' columns, $9 each row's place in the batch, $10 the sessions (sorted),
# $11 the batch's clock, $12 the batch id, $13 the channel, $14 the NOTIFY payload.
_APPEND = """\
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::bigint[], $8::text[], $9::int[])
        AS i(session_id, role, name, content, tool_calls_json, tool_call_id, round_index,
            meta_json, row_no)
), locked AS (
    SELECT session_id, next_seq FROM {s}.session_state WHERE session_id = ANY($10::text[])
    ORDER BY session_id FOR UPDATE
), numbered AS (
    SELECT i.*, l.next_seq - 1 + row_number() OVER (PARTITION BY i.session_id ORDER BY i.row_no)
        AS seq
    FROM input i JOIN locked l ON l.session_id = i.session_id
), ms AS (
    INSERT INTO {s}.messages (session_id, seq, role, name, content, tool_calls_json,
        tool_call_id, round_index, state, meta_json, created_at, position)
    SELECT session_id, seq, role, name, content, tool_calls_json, tool_call_id, round_index,
        'active', meta_json, $11, seq FROM numbered
), st AS (
    UPDATE {s}.session_state AS t SET next_seq = n.last + 1
    FROM (SELECT session_id, MAX(seq) AS last FROM numbered GROUP BY session_id) AS n
    WHERE t.session_id = n.session_id
), tu AS (
    UPDATE {s}.sessions SET updated_at = $11
    WHERE session_id IN (SELECT session_id FROM locked) AND updated_at <> $11
), bt AS (
    INSERT INTO {s}.batches (batch_id, committed_at, outcome)
    SELECT $12, $11, (SELECT json_agg(json_build_array(row_no, seq))::text FROM numbered)
    FROM (SELECT pg_notify($13, $14)) AS wake
)
SELECT row_no, seq FROM numbered"""


_BATCH_ROW = "SELECT outcome FROM {s}.batches WHERE batch_id = $1"
_FORGET_BATCHES = "DELETE FROM {s}.batches WHERE committed_at < $1"
#: How long a committed batch's row is kept: far longer than any reconnect takes.
BATCH_ID_RETENTION_MS = 3_600_000


def eligible(ops: Sequence[WriteOp]) -> bool:
    # An empty append_messages still has to prove its session exists: the general path.
    return all(
        type(op) is AppendMessage or (isinstance(op, AppendMessages) and bool(op.rows))
        for op in ops
    )


def _rows(ops: Sequence[WriteOp]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for op in ops:
        if isinstance(op, AppendMessage):
            rows.append(op.params)
        else:
            assert isinstance(op, AppendMessages)
            rows.extend((op.session_id, *row) for row in op.rows)
    return rows


async def run_appends(
    conn: Any,
    schema: str,
    ops: Sequence[WriteOp],
    *,
    now: int,
    batch_id: str,
    channel: str,
    payload: str,
) -> list[Outcome]:
    """Commit *ops* (all appends) in one statement; return each op's outcome.

    Raises what the statement raised: then nothing of it was written — unless the connection
    dropped, when :func:`outcomes_of` on the batch's row tells.
    """
    rows = _rows(ops)
    columns = list(zip(*rows, strict=True))
    sessions = sorted({op.session_id for op in ops})
    found = await conn.fetch(
        render(_APPEND, schema),
        *columns, list(range(len(rows))), sessions, now, batch_id, channel, payload,
    )  # fmt: skip
    return outcomes_of(ops, {row_no: seq for row_no, seq in found})


def outcomes_of(ops: Sequence[WriteOp], seqs: dict[int, int]) -> list[Outcome]:
    """Each op's outcome from the seqs the statement gave its rows (by row number)."""
    outcomes: list[Outcome] = []
    row_no = 0
    for op in ops:
        count = len(op.rows) if isinstance(op, AppendMessages) else 1
        first = seqs.get(row_no)
        if first is None:
            outcomes.append((SessionNotFound(op.session_id), None))
        elif isinstance(op, AppendMessage):
            outcomes.append((None, first))
        else:
            outcomes.append((None, [seqs[n] for n in range(row_no, row_no + count)]))
        row_no += count
    return outcomes


def decode_outcome(ops: Sequence[WriteOp], outcome: str | None) -> list[Outcome]:
    """The outcomes of a batch this path committed, from the row it left in ``batches``."""
    pairs = [] if outcome is None else json.loads(outcome)
    return outcomes_of(ops, {row_no: seq for row_no, seq in pairs})


async def committed(conn: Any, schema: str, batch_id: str) -> tuple[bool, str | None]:
    """Whether the batch *batch_id* committed and, if this path committed it, its seqs (for a
    writer whose connection dropped before the answer arrived)."""
    row = await conn.fetchrow(render(_BATCH_ROW, schema), batch_id)
    return (False, None) if row is None else (True, row[0])


async def forget_old_batches(conn: Any, schema: str) -> None:
    now = time.time_ns() // 1_000_000
    await conn.execute(render(_FORGET_BATCHES, schema), now - BATCH_ID_RETENTION_MS)
