"""list_sessions / count_sessions on PostgreSQL: a :class:`SessionFilter` compiled to SQL made
of constants in this module plus ``$n`` placeholders; metadata keys and values are bound."""

from __future__ import annotations

from typing import Any

from .._listing import SessionFilter, SessionPage, page_of
from .._rows import SESSION_COLUMNS
from ._queries import Conn
from ._schema import render

#: The only column names that reach SQL text from an argument, chosen by whitelist.
_ORDER_COLUMNS: dict[str, str] = {"created": "created_at", "updated": "updated_at"}
# metadata_json is TEXT (exports stay byte-exact); it is read as jsonb only to match a key.


class _Params:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        """The placeholder of *value*, bound next."""
        self.values.append(value)
        return f"${len(self.values)}"


def _metadata_clause(bind: _Params, key: str, value: Any) -> str:
    # jsonb_typeof tells JSON true from 1 and null from a missing key, as SQLite's json_type.
    found = f"(metadata_json::jsonb -> {bind(key)})"
    if value is None:
        return f"jsonb_typeof({found}) = 'null'"
    if isinstance(value, bool):
        return f"{found} = {bind('true' if value else 'false')}::jsonb"
    if isinstance(value, (int, float)):
        # Compared as numbers, so 1 matches 1.0 (as on SQLite); numeric holds any int exactly.
        return (
            f"jsonb_typeof({found}) = 'number' "
            f"AND (metadata_json::jsonb ->> {bind(key)})::numeric = {bind(str(value))}::numeric"
        )
    return (
        f"jsonb_typeof({found}) = 'string' "
        f"AND (metadata_json::jsonb ->> {bind(key)}) = {bind(value)}"
    )


def compile_filter(f: SessionFilter, bind: _Params) -> str:
    """A WHERE clause made of constants; the values go to *bind*."""
    clauses: list[str] = []
    if f.status is not None:
        clauses.append(f"status = {bind(f.status)}")
    if f.kind is not None:
        clauses.append(f"kind = {bind(f.kind)}")
    if f.roots_only:
        clauses.append("parent_session_id IS NULL")
    elif f.parent_session_id is not None:
        clauses.append(f"parent_session_id = {bind(f.parent_session_id)}")
    if f.forked_from is not None:
        clauses.append(f"forked_from = {bind(f.forked_from)}")
    clauses.extend(_metadata_clause(bind, key, value) for key, value in f.metadata)
    # Ranges are [after, before): inclusive start, exclusive end, in epoch milliseconds.
    for column, op, value in (
        ("created_at", ">=", f.created_after),
        ("created_at", "<", f.created_before),
        ("updated_at", ">=", f.updated_after),
        ("updated_at", "<", f.updated_before),
    ):
        if value is not None:
            clauses.append(f"{column} {op} {bind(value)}")
    return " AND ".join(clauses) or "TRUE"


async def list_sessions(
    conn: Conn,
    schema: str,
    f: SessionFilter,
    order_by: str,
    descending: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> SessionPage:
    column = _ORDER_COLUMNS[order_by]
    direction = "DESC" if descending else "ASC"
    bind = _Params()
    where = compile_filter(f, bind)
    if after is not None:
        # A row-value comparison on the whole key, served by the (column, session_id) index.
        where += f" AND ({column}, session_id) {'<' if descending else '>'} "
        where += f"({bind(after[0])}::bigint, {bind(after[1])}::text)"
    sql = (
        f"SELECT {SESSION_COLUMNS}, {column} FROM {{s}}.sessions WHERE {where} "
        f"ORDER BY {column} {direction}, session_id {direction} LIMIT {bind(limit + 1)}"
    )
    rows = await conn.fetch(render(sql, schema), *bind.values)
    return page_of(rows, limit, order_by, descending)


async def count_sessions(conn: Conn, schema: str, f: SessionFilter) -> int:
    bind = _Params()
    where = compile_filter(f, bind)
    count: int = await conn.fetchval(
        render(f"SELECT COUNT(*) FROM {{s}}.sessions WHERE {where}", schema), *bind.values
    )
    return count
