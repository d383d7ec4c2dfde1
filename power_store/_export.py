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
import sqlite3
from collections.abc import Iterable
from enum import Enum
from typing import Any

from . import _validate as check
from ._batch import Batch
from ._errors import InvalidArgument, SessionExists, SessionNotFound
from ._models import MessageState, SessionKind, SessionStatus, SubagentLifecycle
from ._ops import WriteOp
from ._snapshot import snapshot

FORMAT = "power_store.sessions"
FORMAT_VERSION = 1
CONFLICT_POLICIES = ("error", "replace")

_S, _S0, _I, _I0 = "str", "str|None", "int", "int|None"

# (record type, table, [(column, kind)], ORDER BY). The only identifiers that reach SQL.
_TABLES: tuple[tuple[str, str, tuple[tuple[str, str], ...], str], ...] = (
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
_BY_TYPE = {t[0]: t for t in _TABLES}
_ENUMS: dict[str, type[Enum]] = {
    "status": SessionStatus,
    "kind": SessionKind,
    "lifecycle": SubagentLifecycle,
    "state": MessageState,
}
_JSON_COLUMNS = ("config_json", "metadata_json", "tool_calls_json", "meta_json", "pending_json")


def _encode(record: dict[str, Any]) -> str:
    return check.encode(record) + "\n"


def export_lines(conn: sqlite3.Connection, session_id: str, include_subagents: bool) -> list[str]:
    """Every line of an export, read in one snapshot."""
    with snapshot(conn):
        if include_subagents:
            # Parents before children (depth first), then a stable order within a level.
            ids = [
                r[0]
                for r in conn.execute(
                    "WITH RECURSIVE tree(id) AS (SELECT ? UNION SELECT s.session_id "
                    "FROM sessions s JOIN tree ON s.parent_session_id = tree.id) "
                    "SELECT session_id FROM sessions WHERE session_id IN tree "
                    "ORDER BY spawn_depth, created_at, session_id",
                    (session_id,),
                )
            ]
        else:
            found = conn.execute(
                "SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            ids = [session_id] if found else []
        if not ids:
            raise SessionNotFound(session_id)
        header = {
            "type": "header",
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "session_id": session_id,
            "sessions": len(ids),
        }
        lines = [_encode(header)]
        for kind, table, columns, order in _TABLES:
            names = [c for c, _ in columns]
            sql = f"SELECT {', '.join(names)} FROM {table} WHERE session_id = ?"
            if order:
                sql += f" ORDER BY {order}"
            for sid in ids:
                for row in conn.execute(sql, (sid,)):
                    lines.append(_encode({"type": kind, **dict(zip(names, row, strict=True))}))
    return lines


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
    rows: dict[str, list[tuple[Any, ...]]] = {t[1]: [] for t in _TABLES}
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


class ImportSessions(WriteOp):
    __slots__ = ("ids", "on_conflict", "rows", "session_id")

    def __init__(
        self, ids: list[str], rows: dict[str, list[tuple[Any, ...]]], on_conflict: str
    ) -> None:
        self.session_id = ids[0]  # the exported root
        self.ids = ids
        self.rows = rows
        self.on_conflict = on_conflict

    def apply(self, batch: Batch) -> list[str]:
        conn = batch.conn
        batch.flush()
        existing = [
            sid
            for sid in self.ids
            if conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (sid,)).fetchone()
        ]
        if existing and self.on_conflict == "error":
            raise SessionExists(existing[0])
        # "replace": the imported sessions' rows go, and only theirs; children already in the
        # store that are not part of the export are left as they are.
        for _, table, _, _ in _TABLES:
            conn.executemany(f"DELETE FROM {table} WHERE session_id = ?", [(s,) for s in existing])
        for _, table, columns, _ in _TABLES:
            marks = ", ".join("?" * len(columns))
            names = ", ".join(c for c, _ in columns)
            conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", self.rows[table])
        batch.reload(self.ids)
        return list(self.ids)
