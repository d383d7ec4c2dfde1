"""list_sessions / count_sessions: filters, order, cursors, and the walk guarantee."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

import pytest

from power_store import InvalidArgument, SessionKind, SessionStatus

pytestmark = pytest.mark.asyncio


async def _walk(store: Any, limit: int, between: Any = None, **kwargs: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_sessions(limit=limit, cursor=cursor, **kwargs)
        seen += [s.session_id for s in page.sessions]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
        if between is not None:
            await between()


async def test_filters_and_count(store: Any) -> None:
    root = await store.create_session(metadata={"user": "ann", "n": 3, "vip": True, "x": None})
    other = await store.create_session(metadata={"user": "bob", "n": 3.0, "vip": False})
    child = await store.create_session(parent_session_id=root, metadata={"user": "ann"})
    await store.archive_session(other)

    async def ids(**kw: Any) -> set[str]:
        page = await store.list_sessions(**kw)
        assert await store.count_sessions(**kw) == len(page.sessions)
        return {s.session_id for s in page.sessions}

    assert await ids() == {root, other, child}
    assert await ids(status="archived") == {other}
    assert await ids(status=SessionStatus.ACTIVE) == {root, child}
    assert await ids(kind=SessionKind.SUBAGENT) == {child}
    assert await ids(roots_only=True) == {root, other}
    assert await ids(parent_session_id=root) == {child}
    assert await ids(metadata={"user": "ann"}) == {root, child}
    assert await ids(metadata={"user": "ann", "n": 3}) == {root}
    assert await ids(metadata={"n": 3}) == {root, other}  # 3 == 3.0, as in Python
    assert await ids(metadata={"vip": True}) == {root}
    assert await ids(metadata={"vip": False}) == {other}
    assert await ids(metadata={"x": None}) == {root}  # null, not a missing key
    assert await ids(metadata={"missing": None}) == set()
    assert await ids(metadata={"n": "3"}) == set()  # a string is not the number
    row = await store.get_session(child)
    assert await ids(created_after=row.created_at, created_before=row.created_at + 1) >= {child}
    assert await ids(updated_before=0) == set()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metadata": {"a') OR 1=1 --": 1}},
        {"metadata": {"a.b": 1}},
        {"metadata": {'a"': 1}},
        {"metadata": {"": 1}},
        {"metadata": {"a": [1]}},
        {"metadata": {"a": float("nan")}},
        {"metadata": ["a"]},
        {"status": "gone"},
        {"kind": "x"},
        {"roots_only": True, "parent_session_id": "p"},
        {"created_after": "yesterday"},
        {"limit": 0},
        {"limit": 10_001},
        {"order_by": "session_id"},
        {"cursor": "not-a-cursor"},
    ],
)
async def test_bad_filters_are_rejected(store: Any, kwargs: dict[str, Any]) -> None:
    await store.create_session(metadata={"a": 1})
    with pytest.raises(InvalidArgument):
        await store.list_sessions(**kwargs)


async def test_cursor_keeps_its_order(store: Any) -> None:
    for _ in range(3):
        await store.create_session()
    page = await store.list_sessions(limit=1)
    with pytest.raises(InvalidArgument):
        await store.list_sessions(limit=1, cursor=page.next_cursor, order_by="updated")
    with pytest.raises(InvalidArgument):
        await store.list_sessions(limit=1, cursor=page.next_cursor, descending=True)


async def _create_many(store: Any, count: int) -> list[str]:
    # Concurrent creates share a batch and so a created_at: the session_id tie-break matters.
    return list(await asyncio.gather(*(store.create_session() for _ in range(count))))


@pytest.mark.parametrize("descending", [False, True])
async def test_created_walk_while_writing_misses_and_repeats_nothing(
    store: Any, descending: bool
) -> None:
    initial = await _create_many(store, 40)
    created: list[str] = []

    async def write_between_pages() -> None:
        # New sessions, and updates of sessions both already returned and still ahead.
        created.extend(await _create_many(store, 3))
        for sid in (initial[len(created) % 40], initial[-1 - len(created) % 40]):
            await store.append_message(sid, role="user", content="bump")
        await store.archive_session(initial[len(created) % 40])

    seen = await _walk(store, 6, write_between_pages, descending=descending)
    assert len(seen) == len(set(seen)), "a session was returned twice"
    assert set(initial) <= set(seen), "an existing session was missed"
    if not descending:
        # New sessions sort last, so an ascending walk reaches every one of them — except one
        # created in the very millisecond of a page's last session, whose random id may sort
        # before that session's: the cursor is already past it (documented).
        stamps = {
            s.session_id: s.created_at for s in (await store.list_sessions(limit=10_000)).sessions
        }
        boundaries = {stamps[sid] for sid in seen[5::6]}
        missed = set(created) - set(seen)
        assert all(stamps[sid] in boundaries for sid in missed), "a later session was missed"
    # The same keyset order as one big page.
    everything = await store.list_sessions(limit=10_000, descending=descending)
    assert seen == [s.session_id for s in everything.sessions if s.session_id in set(seen)]


async def test_updated_walk_guarantee(store: Any) -> None:
    initial = await _create_many(store, 30)
    bumped: set[str] = set()

    async def bump() -> None:
        sid = initial[len(bumped)]
        bumped.add(sid)
        await asyncio.sleep(0.002)  # a later millisecond than any current updated_at
        await store.append_message(sid, role="user", content="bump")

    seen = await _walk(store, 5, bump, order_by="updated")
    for sid in set(initial) - bumped:
        assert seen.count(sid) == 1
    assert bumped <= set(seen)


async def test_listing_uses_the_indexes(store: Any) -> None:
    if store.path == ":memory:" or store.backend == "postgres":
        pytest.skip("SQLite's query plans are checked, on a file")
    await store.create_session()
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        for column, index in (("created_at", "idx_sessions_created"),
                              ("updated_at", "idx_sessions_updated")):  # fmt: skip
            plan = " ".join(
                r[3]
                for r in db.execute(
                    f"EXPLAIN QUERY PLAN SELECT session_id FROM sessions WHERE "
                    f"({column}, session_id) > (?, ?) ORDER BY {column}, session_id LIMIT 10",
                    (0, ""),
                )
            )
            assert index in plan
            assert "TEMP B-TREE" not in plan
