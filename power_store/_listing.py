"""Finding sessions: filters, a stable keyset order, and opaque cursors.

Filters are checked in the caller's coroutine into a :class:`SessionFilter`; each backend
compiles it into SQL built only from its own constants plus placeholders, every caller value —
metadata keys included — bound as a parameter.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import _validate as check
from ._errors import InvalidArgument
from ._models import SessionKind, SessionRow, SessionStatus
from ._rows import session_row

Order = Literal["created", "updated"]

#: The orders a walk may take; each backend maps them to its own columns by whitelist.
ORDERS = ("created", "updated")
_CURSOR_VERSION = 1
MAX_LIMIT = 10_000

#: A top-level metadata key. Backends bind it as a parameter (SQLite inside a JSON path); the
#: pattern keeps out what would change a path's meaning (dots, brackets, quotes).
METADATA_KEY = re.compile(r"[A-Za-z0-9_\-]{1,128}")


@dataclass(frozen=True)
class SessionPage:
    """One page of :meth:`AsyncSessionStore.list_sessions`."""

    sessions: list[SessionRow]
    #: Pass back as ``cursor=`` for the next page; ``None`` when this page reached the end.
    next_cursor: str | None


@dataclass(frozen=True)
class SessionFilter:
    """The checked filters of list_sessions / count_sessions; each backend compiles them.

    Every value is already validated: enums as their stored text, ids checked, metadata keys
    matched against :data:`METADATA_KEY`, times as integers.
    """

    status: str | None = None
    kind: str | None = None
    parent_session_id: str | None = None
    roots_only: bool = False
    forked_from: str | None = None
    #: (key, value) pairs matched by equality on top-level metadata keys.
    metadata: tuple[tuple[str, str | int | float | bool | None], ...] = ()
    created_after: int | None = None
    created_before: int | None = None
    updated_after: int | None = None
    updated_before: int | None = None


def _metadata_pair(key: Any, value: Any) -> tuple[str, str | int | float | bool | None]:
    if not isinstance(key, str) or not METADATA_KEY.fullmatch(key):
        raise InvalidArgument(
            f"metadata key {key!r} must be 1-128 letters, digits, '_' or '-' (top-level keys only)"
        )
    if value is None or isinstance(value, (bool, str)):
        return key, value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise InvalidArgument(f"metadata[{key!r}]: {value!r} is not a finite number")
        return key, value
    raise InvalidArgument(
        f"metadata[{key!r}]: only str, int, float, bool or None can be matched, "
        f"not {type(value).__name__}"
    )


def _optional_time(value: Any, name: str) -> int | None:
    return None if value is None else check.integer(value, name)


def build_filter(
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
) -> SessionFilter:
    """Check the filters of list_sessions / count_sessions."""
    if not isinstance(roots_only, bool):
        raise InvalidArgument(f"roots_only must be a bool, got {roots_only!r}")
    if roots_only and parent_session_id is not None:
        raise InvalidArgument("roots_only and parent_session_id exclude each other")
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidArgument(f"metadata must be a dict, not {type(metadata).__name__}")
        pairs = [_metadata_pair(key, value) for key, value in metadata.items()]
    return SessionFilter(
        status=None if status is None else check.enum_value(SessionStatus, status, "status").value,
        kind=None if kind is None else check.enum_value(SessionKind, kind, "kind").value,
        parent_session_id=(
            None if parent_session_id is None
            else check.session_id(parent_session_id, "parent_session_id")
        ),
        roots_only=roots_only,
        forked_from=None if forked_from is None else check.session_id(forked_from, "forked_from"),
        metadata=tuple(pairs),
        created_after=_optional_time(created_after, "created_after"),
        created_before=_optional_time(created_before, "created_before"),
        updated_after=_optional_time(updated_after, "updated_after"),
        updated_before=_optional_time(updated_before, "updated_before"),
    )  # fmt: skip


def check_order(order_by: Any, descending: Any) -> tuple[str, bool]:
    if order_by not in ORDERS:
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


def page_of(
    rows: Sequence[Sequence[Any]], limit: int, order_by: str, descending: bool
) -> SessionPage:
    """The page made of up to ``limit + 1`` rows (session columns, then the order key): the
    extra row only tells that another page follows."""
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(order_by, descending, last[-1], last[0])
    return SessionPage([session_row(r) for r in page], next_cursor)
