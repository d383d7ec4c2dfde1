"""Row objects built from database rows — the same tuples on every backend.

The column lists fix the order the builders read; each backend selects exactly these columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._models import (
    CompactionRow,
    MessageRow,
    MessageState,
    SessionKind,
    SessionRow,
    SessionStateRow,
    SessionStatus,
    SubagentLifecycle,
)
from ._validate import decode

SESSION_COLUMNS = (
    "session_id, created_at, updated_at, system_prompt, model, config_json, status, kind, "
    "parent_session_id, spawn_tool_call_id, spawn_depth, lifecycle, metadata_json"
)
MESSAGE_COLUMNS = (
    "session_id, seq, role, name, content, tool_calls_json, tool_call_id, round_index, "
    "state, meta_json, created_at"
)
COMPACTION_COLUMNS = (
    "session_id, compact_seq, note_seq, from_seq, to_seq, before_tokens, after_tokens, "
    "round_index, created_at"
)


# Value -> member maps: a dict lookup per row instead of an Enum call (measured ~1 µs each);
# a value not in the map (a damaged file) still gets the Enum's own ValueError.
_STATUS = {m.value: m for m in SessionStatus}
_KIND = {m.value: m for m in SessionKind}
_LIFECYCLE = {m.value: m for m in SubagentLifecycle}
_STATE = {m.value: m for m in MessageState}


def _object(text: str | None) -> dict[str, Any]:
    # Most rows carry the empty object: a fresh dict without a trip through json.
    return {} if text is None or text == "{}" else decode(text) or {}


# Rows are built positionally, in field order (the column lists above follow it): building
# 200 messages was two thirds of a history load, and keyword arguments and Enum calls were
# most of that.
def session_row(r: Sequence[Any]) -> SessionRow:
    return SessionRow(
        r[0], r[1], r[2], r[3], r[4], _object(r[5]),
        _STATUS.get(r[6]) or SessionStatus(r[6]),
        _KIND.get(r[7]) or SessionKind(r[7]),
        r[8], r[9], r[10],
        _LIFECYCLE.get(r[11]) or SubagentLifecycle(r[11]),
        _object(r[12]),
    )  # fmt: skip


def message_row(r: Sequence[Any]) -> MessageRow:
    return MessageRow(
        r[0], r[1], r[2], r[3], r[4], decode(r[5]), r[6], r[7],
        _STATE.get(r[8]) or MessageState(r[8]),
        _object(r[9]), r[10],
    )  # fmt: skip


STATE_COLUMNS = "session_id, next_seq, round_index, last_compact_seq, pending_json"


def state_row(r: Sequence[Any]) -> SessionStateRow:
    return SessionStateRow(
        session_id=r[0], next_seq=r[1], round_index=r[2], last_compact_seq=r[3],
        pending=decode(r[4]),
    )  # fmt: skip


def compaction_row(r: Sequence[Any]) -> CompactionRow:
    return CompactionRow(*r)
