"""Moving sessions between stores as JSON Lines.

The format is the tables themselves: after a header line, one JSON object per row, in the
order sessions, messages, compactions, usage, state, each with ``"type"`` and the row's
columns by name, JSON columns kept as their stored text. Rows are written exactly as stored,
so an import recreates them exactly (seqs, positions, timestamps and states included) and a
round trip export → import → export gives the same bytes.

Reading format version 1 only; a newer version is refused rather than half-understood.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

from . import _validate as check
from ._errors import InvalidArgument
from ._models import MessageState, SessionKind, SessionStatus, SubagentLifecycle

FORMAT = "power_store.sessions"
FORMAT_VERSION = 1
CONFLICT_POLICIES = ("error", "replace")

_S, _S0, _I, _I0 = "str", "str|None", "int", "int|None"

# (record type, table, [(column, kind)], ORDER BY). The only identifiers that reach SQL, in
# both backends: a line is read and written by these names, never by its own keys.
TABLES: tuple[tuple[str, str, tuple[tuple[str, str], ...], str], ...] = (
    ("session", "sessions", (
        ("session_id", _S), ("created_at", _I), ("updated_at", _I), ("system_prompt", _S0),
        ("model", _S0), ("config_json", _S0), ("status", _S), ("kind", _S),
        ("parent_session_id", _S0), ("spawn_tool_call_id", _S0), ("spawn_depth", _I),
        ("lifecycle", _S), ("metadata_json", _S0), ("forked_from", _S0), ("forked_at_seq", _I0),
    ), ""),
    ("message", "messages", (
        ("session_id", _S), ("seq", _I), ("position", _I0), ("role", _S), ("name", _S0),
        ("content", _S0), ("tool_calls_json", _S0), ("tool_call_id", _S0),
        ("round_index", _I0), ("state", _S), ("meta_json", _S0), ("created_at", _I),
    ), "seq"),
    ("compaction", "compactions", (
        ("session_id", _S), ("compact_seq", _I), ("note_seq", _I), ("from_seq", _I),
        ("to_seq", _I), ("before_tokens", _I0), ("after_tokens", _I0), ("round_index", _I0),
        ("created_at", _I),
    ), "compact_seq"),
    ("usage", "usage_rounds", (
        ("session_id", _S), ("round_index", _I), ("prompt_tokens", _I0),
        ("completion_tokens", _I0), ("total_tokens", _I0), ("model", _S0), ("created_at", _I),
    ), "round_index"),
    ("state", "session_state", (
        ("session_id", _S), ("next_seq", _I), ("round_index", _I), ("last_compact_seq", _I),
        ("pending_json", _S0),
    ), ""),
)  # fmt: skip
_BY_TYPE = {t[0]: t for t in TABLES}
#: table -> its column names, in export (and INSERT) order.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {t[1]: tuple(c for c, _ in t[2]) for t in TABLES}
#: Every table holding a session's rows; deleting a session deletes its rows in all of them.
CHILD_TABLES = ("messages", "compactions", "usage_rounds", "session_state", "sessions")
_ENUMS: dict[str, type[Enum]] = {
    "status": SessionStatus,
    "kind": SessionKind,
    "lifecycle": SubagentLifecycle,
    "state": MessageState,
}
_JSON_COLUMNS = ("config_json", "metadata_json", "tool_calls_json", "meta_json", "pending_json")


def _encode(record: dict[str, Any]) -> str:
    return check.encode(record) + "\n"


def header_line(session_id: str, sessions: int) -> str:
    return _encode(
        {
            "type": "header",
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "session_id": session_id,
            "sessions": sessions,
        }
    )


def record_line(kind: str, names: Sequence[str], row: Sequence[Any]) -> str:
    """One row of *kind* (a record type of :data:`TABLES`) as an export line."""
    return _encode({"type": kind, **dict(zip(names, row, strict=True))})


def _check_value(value: Any, kind: str, where: str) -> None:
    if value is None and kind.endswith("|None"):
        return
    if kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise InvalidArgument(f"{where} must be {kind}, got {value!r}")


def parse_lines(lines: Iterable[Any]) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    """Check an export in the caller's coroutine; return the session ids and rows per table."""
    if isinstance(lines, (str, bytes)):
        raise InvalidArgument("lines must be an iterable of lines, not one string")
    rows: dict[str, list[tuple[Any, ...]]] = {t[1]: [] for t in TABLES}
    ids: list[str] = []
    header_seen = False
    for number, line in enumerate(lines, 1):
        if not isinstance(line, str):
            raise InvalidArgument(f"line {number} is {type(line).__name__}, not str")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InvalidArgument(f"line {number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise InvalidArgument(f"line {number} is not a JSON object")
        kind = record.pop("type", None)
        if not header_seen:
            if kind != "header" or record.get("format") != FORMAT:
                raise InvalidArgument(f"line {number}: not a {FORMAT} export header")
            if record.get("version") != FORMAT_VERSION:
                raise InvalidArgument(
                    f"export format version {record.get('version')!r} is not supported "
                    f"(this power_store reads version {FORMAT_VERSION})"
                )
            header_seen = True
            continue
        if kind not in _BY_TYPE:
            raise InvalidArgument(f"line {number}: unknown record type {kind!r}")
        _, table, columns, _ = _BY_TYPE[kind]
        if set(record) != {c for c, _ in columns}:
            raise InvalidArgument(f"line {number}: {kind} columns do not match format")
        for column, column_kind in columns:
            value = record[column]
            where = f"line {number}: {column}"
            _check_value(value, column_kind, where)
            if column in _ENUMS:
                check.enum_value(_ENUMS[column], value, where)
            if column in _JSON_COLUMNS and value is not None:
                try:
                    json.loads(value)
                except ValueError:
                    raise InvalidArgument(f"{where} is not JSON text") from None
        if kind == "session":
            ids.append(record["session_id"])
        elif record["session_id"] not in ids:
            raise InvalidArgument(
                f"line {number}: {kind} of session {record['session_id']!r} comes before "
                "(or without) its session line"
            )
        rows[table].append(tuple(record[c] for c, _ in columns))
    if not header_seen:
        raise InvalidArgument("empty export: no header line")
    if len(set(ids)) != len(ids):
        raise InvalidArgument("the export holds a session twice")
    if sorted(r[0] for r in rows["session_state"]) != sorted(ids):
        raise InvalidArgument("the export must hold exactly one state line per session")
    return ids, rows
