"""list_sessions / count_sessions on SQLite: a :class:`SessionFilter` compiled to SQL made of
constants in this module plus ``?`` placeholders (metadata keys are bound inside JSON paths)."""

from __future__ import annotations

import sqlite3
from typing import Any

from .._listing import SessionFilter, SessionPage, page_of
from .._rows import SESSION_COLUMNS

#: The only column names that reach SQL text from an argument, chosen by whitelist.
_ORDER_COLUMNS: dict[str, str] = {"created": "created_at", "updated": "updated_at"}


def _metadata_clause(key: str, value: Any) -> tuple[str, list[Any]]:
    path = f'$."{key}"'  # the key matched METADATA_KEY: no quote, dot or bracket in it
    # json_type tells JSON true from 1 and null from a missing key, which json_extract cannot.
    if value is None:
        return "json_type(metadata_json, ?) = 'null'", [path]
    if isinstance(value, bool):
        return "json_type(metadata_json, ?) = ?", [path, "true" if value else "false"]
    if isinstance(value, (int, float)):
        return (
            "json_type(metadata_json, ?) IN ('integer', 'real') "
            "AND json_extract(metadata_json, ?) = ?",
            [path, path, value],
        )
    return (
        "json_type(metadata_json, ?) = 'text' AND json_extract(metadata_json, ?) = ?",
        [path, path, value],
    )


def compile_filter(f: SessionFilter) -> tuple[str, list[Any]]:
    """A WHERE clause made of constants, and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if f.status is not None:
        clauses.append("status = ?")
        params.append(f.status)
    if f.kind is not None:
        clauses.append("kind = ?")
        params.append(f.kind)
    if f.roots_only:
        # The unary + keeps the planner off idx_sessions_parent: most sessions are roots, and
        # walking the order index beats sorting all of them.
        clauses.append("+parent_session_id IS NULL")
    elif f.parent_session_id is not None:
        clauses.append("parent_session_id = ?")
        params.append(f.parent_session_id)
    if f.forked_from is not None:
        clauses.append("forked_from = ?")
        params.append(f.forked_from)
    for key, value in f.metadata:
        clause, values = _metadata_clause(key, value)
        clauses.append(clause)
        params.extend(values)
    # Ranges are [after, before): inclusive start, exclusive end, in epoch milliseconds.
    for column, op, value in (
        ("created_at", ">=", f.created_after),
        ("created_at", "<", f.created_before),
        ("updated_at", ">=", f.updated_after),
        ("updated_at", "<", f.updated_before),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    return " AND ".join(clauses) or "1", params


def list_sessions(
    conn: sqlite3.Connection,
    f: SessionFilter,
    order_by: str,
    descending: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> SessionPage:
    column = _ORDER_COLUMNS[order_by]
    direction = "DESC" if descending else "ASC"
    where, params = compile_filter(f)
    if after is not None:
        # A row-value comparison on the whole key, served by the (column, session_id) index.
        where += f" AND ({column}, session_id) {'<' if descending else '>'} (?, ?)"
        params.extend(after)
    rows = conn.execute(
        f"SELECT {SESSION_COLUMNS}, {column} FROM sessions WHERE {where} "
        f"ORDER BY {column} {direction}, session_id {direction} LIMIT ?",
        (*params, limit + 1),
    ).fetchall()
    return page_of(rows, limit, order_by, descending)


def count_sessions(conn: sqlite3.Connection, f: SessionFilter) -> int:
    where, params = compile_filter(f)
    count: int = conn.execute(f"SELECT COUNT(*) FROM sessions WHERE {where}", params).fetchone()[0]
    return count
