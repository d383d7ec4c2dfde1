"""Finding sessions: filters, a stable keyset order, and opaque cursors.

Filters are compiled in the caller's coroutine into SQL built only from constants in this
module plus ``?`` placeholders; every caller value — metadata keys included, as JSON paths — is
bound as a parameter. The query then runs whole on a reader.

Why keyset cursors: an offset shifts when sessions are inserted or deleted in front of it, so a
page walk would repeat or skip rows. A cursor holds the sort key of the last row returned, and
the next page starts strictly after it. With ``order_by="created"`` (the default) the key
``(created_at, session_id)`` never changes after a session is created, which gives the walk
guarantee documented on :meth:`AsyncSessionStore.list_sessions`; ``order_by="updated"`` sorts
by a key that moves whenever a session is written, and promises less.
"""

from __future__ import annotations

import base64
import json
import math
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from . import _validate as check
from ._errors import InvalidArgument
from ._models import SessionKind, SessionRow, SessionStatus
from ._queries import SESSION_COLUMNS, session_row

Order = Literal["created", "updated"]

#: The only column names that reach SQL text from an argument, chosen by whitelist.
_ORDER_COLUMNS: dict[str, str] = {"created": "created_at", "updated": "updated_at"}
_CURSOR_VERSION = 1
MAX_LIMIT = 10_000

# A top-level metadata key. Quoted into a JSON path ($."key") that is bound as a parameter; the
# pattern only keeps out what would change the path's meaning (dots, brackets, quotes).
_METADATA_KEY = re.compile(r"[A-Za-z0-9_\-]{1,128}")


@dataclass(frozen=True)
class SessionPage:
    """One page of :meth:`AsyncSessionStore.list_sessions`."""

    sessions: list[SessionRow]
    #: Pass back as ``cursor=`` for the next page; ``None`` when this page reached the end.
    next_cursor: str | None


@dataclass(frozen=True)
class SessionQuery:
    """A checked filter: a WHERE clause made of constants, and its parameters."""

    where: str
    params: tuple[Any, ...]


def _metadata_clause(key: Any, value: Any) -> tuple[str, list[Any]]:
    if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
        raise InvalidArgument(
            f"metadata key {key!r} must be 1-128 letters, digits, '_' or '-' (top-level keys only)"
        )
    path = f'$."{key}"'
    # json_type tells JSON true from 1 and null from a missing key, which json_extract cannot.
    if value is None:
        return "json_type(metadata_json, ?) = 'null'", [path]
    if isinstance(value, bool):
        return "json_type(metadata_json, ?) = ?", [path, "true" if value else "false"]
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise InvalidArgument(f"metadata[{key!r}]: {value!r} is not a finite number")
        return (
            "json_type(metadata_json, ?) IN ('integer', 'real') "
            "AND json_extract(metadata_json, ?) = ?",
            [path, path, value],
        )
    if isinstance(value, str):
        return (
            "json_type(metadata_json, ?) = 'text' AND json_extract(metadata_json, ?) = ?",
            [path, path, value],
        )
    raise InvalidArgument(
        f"metadata[{key!r}]: only str, int, float, bool or None can be matched, "
        f"not {type(value).__name__}"
    )


def build_query(
    *,
    status: Any = None,
    kind: Any = None,
    parent_session_id: Any = None,
    roots_only: Any = False,
    forked_from: Any = None,
    metadata: Any = None,
    created_after: Any = None,
    created_before: Any = None,
    updated_after: Any = None,
    updated_before: Any = None,
) -> SessionQuery:
    """Check the filters of list_sessions / count_sessions and compile them."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        clauses.append("status = ?")
        params.append(check.enum_value(SessionStatus, status, "status").value)
    if kind is not None:
        clauses.append("kind = ?")
        params.append(check.enum_value(SessionKind, kind, "kind").value)
    if not isinstance(roots_only, bool):
        raise InvalidArgument(f"roots_only must be a bool, got {roots_only!r}")
    if roots_only:
        if parent_session_id is not None:
            raise InvalidArgument("roots_only and parent_session_id exclude each other")
        # The unary + keeps the planner off idx_sessions_parent: most sessions are roots, and
        # walking the order index beats sorting all of them.
        clauses.append("+parent_session_id IS NULL")
    elif parent_session_id is not None:
        clauses.append("parent_session_id = ?")
        params.append(check.session_id(parent_session_id, "parent_session_id"))
    if forked_from is not None:
        clauses.append("forked_from = ?")
        params.append(check.session_id(forked_from, "forked_from"))
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidArgument(f"metadata must be a dict, not {type(metadata).__name__}")
        for key, value in metadata.items():
            clause, values = _metadata_clause(key, value)
            clauses.append(clause)
            params.extend(values)
    # Ranges are [after, before): inclusive start, exclusive end, in epoch milliseconds.
    for column, op, value, name in (
        ("created_at", ">=", created_after, "created_after"),
        ("created_at", "<", created_before, "created_before"),
        ("updated_at", ">=", updated_after, "updated_after"),
        ("updated_at", "<", updated_before, "updated_before"),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(check.integer(value, name))
    return SessionQuery(" AND ".join(clauses) or "1", tuple(params))


def check_order(order_by: Any, descending: Any) -> tuple[str, bool]:
    if order_by not in _ORDER_COLUMNS:
        raise InvalidArgument(f"order_by must be 'created' or 'updated', got {order_by!r}")
    if not isinstance(descending, bool):
        raise InvalidArgument(f"descending must be a bool, got {descending!r}")
    return order_by, descending


def encode_cursor(order_by: str, descending: bool, key: int, session_id: str) -> str:
    raw = json.dumps([_CURSOR_VERSION, order_by, descending, key, session_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: Any, order_by: str, descending: bool) -> tuple[int, str]:
    """The (key, session_id) a cursor continues after; it must come from the same order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, c_order, c_desc, key, sid = json.loads(base64.urlsafe_b64decode(padded))
        valid = (
            version == _CURSOR_VERSION
            and isinstance(key, int)
            and isinstance(sid, str)
            and isinstance(c_desc, bool)
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise InvalidArgument(f"cursor {cursor!r} was not made by list_sessions")
    if (c_order, c_desc) != (order_by, descending):
        raise InvalidArgument(
            f"cursor {cursor!r} belongs to order_by={c_order!r}, descending={c_desc}; "
            "a walk must keep its order"
        )
    return key, sid


def list_sessions(
    conn: sqlite3.Connection,
    query: SessionQuery,
    order_by: str,
    descending: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> SessionPage:
    column = _ORDER_COLUMNS[order_by]
    direction = "DESC" if descending else "ASC"
    where, params = query.where, list(query.params)
    if after is not None:
        # A row-value comparison on the whole key, served by the (column, session_id) index.
        where += f" AND ({column}, session_id) {'<' if descending else '>'} (?, ?)"
        params.extend(after)
    rows = conn.execute(
        f"SELECT {SESSION_COLUMNS}, {column} FROM sessions WHERE {where} "
        f"ORDER BY {column} {direction}, session_id {direction} LIMIT ?",
        (*params, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(order_by, descending, last[-1], last[0])
    return SessionPage([session_row(r) for r in rows], next_cursor)


def count_sessions(conn: sqlite3.Connection, query: SessionQuery) -> int:
    count: int = conn.execute(
        f"SELECT COUNT(*) FROM sessions WHERE {query.where}", query.params
    ).fetchone()[0]
    return count
