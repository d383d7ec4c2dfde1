"""The PostgreSQL write side (schema, error mapping, group-commit batch) against a real server.

Needs ``POWER_STORE_PG_DSN`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``); every test
gets a fresh schema, dropped afterwards. Where the semantics are the SQLite batch's, a test runs
the same batches through the SQLite batch too and compares outcomes and every table's rows.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from conftest import pg_dsn

from power_store._errors import (
    DatabaseError,
    InvalidArgument,
    InvalidCompactionRange,
    InvalidForkPoint,
    SchemaTooNew,
    SessionExists,
    SessionNotFound,
    SpawnDepthExceeded,
)
from power_store._export import TABLES, parse_lines
from power_store._maintenance import PruneResult
from power_store._models import SessionKind, SubagentLifecycle
from power_store._ops import (
    AppendMessage,
    AppendMessages,
    ArchiveSession,
    CloseSession,
    CreateSession,
    ForkSession,
    ImportSessions,
    Prune,
    RecordCompaction,
    RecordUsage,
    SetPending,
    SetRoundIndex,
    UpdateSessionPrompt,
    WriteOp,
)
from power_store.sqlite import _batch as sqlite_batch
from power_store.sqlite import _schema as sqlite_schema
from power_store.sqlite._export import export_lines

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio]
asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is not installed (power_store[postgres])")

from power_store.postgres import _batch as pg_batch  # noqa: E402
from power_store.postgres import _schema as pg_schema  # noqa: E402
from power_store.postgres._appends import committed  # noqa: E402
from power_store.postgres._errors import ConnectionLost  # noqa: E402

MAX_DEPTH = 3
EPHEMERAL, LINKED, DETACHED = (
    SubagentLifecycle.EPHEMERAL,
    SubagentLifecycle.LINKED,
    SubagentLifecycle.DETACHED,
)


def fresh_schema() -> str:
    return f"ps_test_{uuid.uuid4().hex[:16]}"


async def drop(conn: Any, schema: str) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {pg_schema.schema_identifier(schema)} CASCADE")


class PG:
    """A migrated fresh schema and a connection to run batches on."""

    def __init__(self, conn: Any, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self.channel = f"{schema}_writes"
        self.last_batch_id = ""

    async def run(self, ops: Sequence[WriteOp], conn: Any = None) -> list[Any]:
        self.last_batch_id = uuid.uuid4().hex
        return await pg_batch.run_batch(
            conn or self.conn,
            self.schema,
            ops,
            max_spawn_depth=MAX_DEPTH,
            batch_id=self.last_batch_id,
            channel=self.channel,
        )

    async def values(self, ops: Sequence[WriteOp]) -> list[Any]:
        """Run a batch that must succeed whole; its values."""
        outcomes = await self.run(ops)
        assert [e for e, _ in outcomes] == [None] * len(ops), outcomes
        return [v for _, v in outcomes]

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.fetch(pg_schema.render(sql, self.schema), *args)]


@pytest_asyncio.fixture
async def pg() -> AsyncIterator[PG]:
    conn = await asyncpg.connect(pg_dsn())
    schema = fresh_schema()
    try:
        await pg_schema.migrate(conn, schema)
        yield PG(conn, schema)
    finally:
        await drop(conn, schema)
        await conn.close()


def create(
    sid: str,
    parent: str | None = None,
    lifecycle: SubagentLifecycle = EPHEMERAL,
    prompt: str | None = "be brief",
) -> CreateSession:
    return CreateSession(
        sid, prompt, "m", '{"t":1}', parent, None, SessionKind.ROOT, lifecycle, '{"k":"v"}'
    )


def append(sid: str, content: str = "hi", round_index: int | None = None) -> AppendMessage:
    return AppendMessage(sid, "user", None, content, None, None, round_index, None)


def append_many(sid: str, n: int, round_index: int | None = None) -> AppendMessages:
    rows = [
        ("assistant", None, f"m{i}", '[{"id":"c"}]', None, round_index, '{"x":1}') for i in range(n)
    ]
    return AppendMessages(sid, rows)


def compact(sid: str, from_seq: int, to_seq: int) -> RecordCompaction:
    return RecordCompaction(sid, from_seq, to_seq, "summary", 100, 10, 2, '{"c":1}')


def usage(sid: str, round_index: int, total: int) -> RecordUsage:
    return RecordUsage(sid, round_index, 1, 2, total, "m", 1234)


# --- the SQLite batch as the reference for semantics ---

_NORMALISED = {
    "sessions": {"created_at", "updated_at"},
    "messages": {"created_at"},
    "compactions": {"created_at"},
}


class Mirror:
    """Runs every batch on PostgreSQL and on the SQLite batch; outcomes must agree."""

    def __init__(self, pg: PG) -> None:
        self.pg = pg
        self.lite = sqlite3.connect(":memory:", isolation_level=None)
        sqlite_schema.migrate(self.lite, ":memory:")
        self.known = sqlite_batch.KnownSeqs()

    async def run(self, ops: Sequence[WriteOp]) -> list[Any]:
        expected = sqlite_batch.run_batch(self.lite, ops, MAX_DEPTH, self.known)
        got = await self.pg.run(ops)
        assert [type(e) for e, _ in got] == [type(e) for e, _ in expected], (got, expected)
        assert [v for _, v in got] == [v for _, v in expected]
        return got

    def run_lite(self, ops: Sequence[WriteOp]) -> None:
        outcomes = sqlite_batch.run_batch(self.lite, ops, MAX_DEPTH, self.known)
        assert [e for e, _ in outcomes] == [None] * len(ops), outcomes

    async def assert_same_tables(self) -> None:
        for _, table, columns, _ in TABLES:
            names = [c for c, _ in columns]
            order = {
                "sessions": "session_id",
                "session_state": "session_id",
                "usage_rounds": "session_id, round_index",
                "compactions": "session_id, compact_seq",
            }.get(table, "session_id, seq")
            sql = f"SELECT {', '.join(names)} FROM {{s}}.{table} ORDER BY {order}"
            lite = [tuple(r) for r in self.lite.execute(sql.replace("{s}.", ""))]
            got = await self.pg.fetch(sql)
            skip = {i for i, n in enumerate(names) if n in _NORMALISED.get(table, ())}
            assert _blank(got, skip) == _blank(lite, skip), table


def _blank(rows: list[tuple[Any, ...]], columns: set[int]) -> list[tuple[Any, ...]]:
    """*rows* with the batch-clock columns blanked (the two runs happen at different times)."""
    return [tuple(None if i in columns else v for i, v in enumerate(r)) for r in rows]


# --- schema ---


async def test_schema_identifier_whitelist() -> None:
    assert pg_schema.schema_identifier("ps_1") == '"ps_1"'
    assert pg_schema.schema_identifier("_" + "a" * 62) == '"_' + "a" * 62 + '"'
    for bad in ["", "Ps", "1ps", 'a"b', "a;drop", "a b", "_" + "a" * 63, "é"]:
        with pytest.raises(InvalidArgument):
            pg_schema.schema_identifier(bad)


async def test_twenty_connections_migrate_a_fresh_schema_exactly_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[int] = []
    original = pg_schema.MIGRATIONS[0]

    async def counted(conn: Any, schema: str) -> None:
        steps.append(1)
        await asyncio.sleep(0.05)  # widen the window for a second migrator
        await original(conn, schema)

    monkeypatch.setattr(pg_schema, "MIGRATIONS", (counted,))
    schema = fresh_schema()
    conns = await asyncio.gather(*(asyncpg.connect(pg_dsn()) for _ in range(20)))
    try:
        await asyncio.gather(*(pg_schema.migrate(c, schema) for c in conns))
        assert steps == [1]
        assert await pg_schema.schema_version(conns[0], schema) == 1
        tables = await conns[0].fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
        )
        assert tables == 7
    finally:
        await drop(conns[0], schema)
        await asyncio.gather(*(c.close() for c in conns))


async def test_migrate_refuses_a_newer_schema(pg: PG) -> None:
    await pg.conn.execute(pg_schema.render("UPDATE {s}.schema_version SET version = 99", pg.schema))
    with pytest.raises(SchemaTooNew):
        await pg_schema.migrate(pg.conn, pg.schema)


# --- the batch ---


async def test_seqs_are_allocated_in_queue_order_across_sessions(pg: PG) -> None:
    m = Mirror(pg)
    await m.run([create("a"), create("b"), create("c"), append("a")])
    got = await m.run(
        [
            append("b"),
            append("a"),
            append_many("c", 3),
            append("a"),
            append_many("b", 2),
            append("c"),
            append_many("a", 0),
        ]
    )
    assert [v for _, v in got] == [1, 2, [1, 2, 3], 3, [2, 3], 4, []]
    assert await pg.fetch(
        "SELECT session_id, next_seq FROM {s}.session_state ORDER BY session_id"
    ) == [("a", 4), ("b", 4), ("c", 5)]
    # position = seq for appends.
    assert await pg.fetch("SELECT count(*) FROM {s}.messages WHERE position <> seq") == [(0,)]
    await m.assert_same_tables()


async def test_a_rejected_op_fails_alone_and_the_rest_commits(pg: PG) -> None:
    m = Mirror(pg)
    await m.run(
        [create("a"), create("p"), create("p1", "p"), create("p2", "p1"), create("p3", "p2")]
    )
    got = await m.run(
        [
            append("a"),
            append("nope"),
            create("a"),
            create("p4", "p3"),
            create("x", "gone"),
            compact("a", 1, 9),
            SetRoundIndex("nope", 3),
            append("a"),
            ArchiveSession("nope"),
            UpdateSessionPrompt("a", "new"),
            ForkSession("a", 7, "f", None),
            ForkSession("nope", None, "f", None),
            ForkSession("a", None, "a", None),
        ]
    )
    errors = [type(e) for e, _ in got]
    assert errors == [
        type(None),
        SessionNotFound,
        SessionExists,
        SpawnDepthExceeded,
        SessionNotFound,
        InvalidCompactionRange,
        SessionNotFound,
        type(None),
        SessionNotFound,
        type(None),
        InvalidForkPoint,
        SessionNotFound,
        SessionExists,
    ]
    assert [v for _, v in got][7] == 2
    await m.assert_same_tables()


async def test_a_value_postgres_refuses_fails_only_its_op_after_a_savepoint_replay(pg: PG) -> None:
    m = Mirror(pg)
    await m.run([create("a"), create("b")])
    # SQLite stores NUL; PostgreSQL text refuses it: only the PostgreSQL side is checked here.
    got = await pg.run(
        [
            append("a", "one"),
            append("a", "bad\x00text"),
            append("b", "two"),
            create("c\x00"),
            SetRoundIndex("a", 4),
            append("a", "three"),
            append("b", "\udc00"),
        ]
    )
    errors = [e for e, _ in got]
    assert [type(e) for e in errors] == [
        type(None),
        InvalidArgument,
        type(None),
        InvalidArgument,
        type(None),
        type(None),
        InvalidArgument,
    ]
    assert [v for _, v in got] == [1, None, 1, None, None, 2, None]
    assert await pg.fetch("SELECT session_id, seq, content FROM {s}.messages ORDER BY 1, 2") == [
        ("a", 1, "one"),
        ("a", 2, "three"),
        ("b", 1, "two"),
    ]
    assert await pg.fetch(
        "SELECT session_id, next_seq, round_index FROM {s}.session_state ORDER BY 1"
    ) == [("a", 3, 4), ("b", 2, 0)]
    assert (await committed(pg.conn, pg.schema, pg.last_batch_id))[0]


async def test_buffered_updates_last_one_wins_and_usage_is_an_upsert(pg: PG) -> None:
    m = Mirror(pg)
    await m.run([create("a"), create("b"), usage("a", 1, 5)])
    await m.run(
        [
            SetRoundIndex("a", 1),
            SetPending("a", '{"p":1}'),
            usage("a", 1, 10),
            usage("a", 2, 3),
            SetRoundIndex("a", 2),
            usage("a", 1, 11),
            SetPending("b", '{"q":2}'),
            SetPending("a", None),
            append("b"),
            SetRoundIndex("b", 7),
        ]
    )
    await m.assert_same_tables()
    assert await pg.fetch(
        "SELECT session_id, round_index, pending_json FROM {s}.session_state ORDER BY 1"
    ) == [("a", 2, None), ("b", 7, '{"q":2}')]


async def test_compaction_sees_earlier_appends_of_its_batch(pg: PG) -> None:
    m = Mirror(pg)
    await m.run([create("a"), append_many("a", 3)])
    got = await m.run(
        [
            append("a"),
            append("a"),
            compact("a", 2, 4),
            append("a"),
            compact("a", 1, 6),
            compact("a", 1, 1),
        ]
    )
    assert [v for _, v in got][:5] == [4, 5, (1, 6), 7, (2, 8)]
    assert isinstance(got[5][0], InvalidCompactionRange)
    await m.assert_same_tables()
    # The second note stands where message 1 stood, and swallowed the first note (seq 6).
    assert await pg.fetch(
        "SELECT seq, position FROM {s}.messages WHERE state = 'active' ORDER BY position, seq"
    ) == [(8, 1), (7, 7)]


async def test_fork_copies_what_the_sqlite_fork_copies(pg: PG) -> None:
    m = Mirror(pg)
    await m.run(
        [
            create("a"),
            append_many("a", 4, round_index=1),
            SetPending("a", '{"p":1}'),
            usage("a", 1, 9),
        ]
    )
    await m.run([compact("a", 2, 3), append("a", round_index=2), SetRoundIndex("a", 2)])
    got = await m.run(
        [
            append("a", round_index=3),
            ForkSession("a", None, "all", None),
            ForkSession("a", 5, "at_note", '{"m":2}'),
            ForkSession("a", 4, "at_4", None),
            ForkSession("a", 2, "at_out", None),
            append("all"),
            append("at_4"),
        ]
    )
    assert isinstance(got[4][0], InvalidForkPoint)
    await m.assert_same_tables()
    # Copied messages keep their created_at.
    assert await pg.fetch(
        "SELECT count(*) FROM {s}.messages f JOIN {s}.messages s ON s.session_id = 'a' "
        "AND s.seq = f.seq WHERE f.session_id = 'all' AND f.created_at <> s.created_at"
    ) == [(0,)]


async def test_close_cascade_follows_lifecycles(pg: PG) -> None:
    m = Mirror(pg)
    await m.run(
        [
            create("r"),
            create("e", "r", EPHEMERAL),
            create("l", "r", LINKED),
            create("d", "r", DETACHED),
            create("de", "d", EPHEMERAL),
            create("le", "l", EPHEMERAL),
            create("o"),
            create("oc", "o", LINKED),
        ]
    )
    await m.run([append("e"), usage("le", 1, 1), append("le"), compact("le", 1, 1)])
    got = await m.run(
        [
            append("r"),
            CloseSession("r", True),
            append("e"),
            append("d"),
            CloseSession("o", False),
            CloseSession("missing", True),
            append("oc"),
            create("r"),
        ]
    )
    assert [v for _, v in got][:2] == [1, 4]
    await m.assert_same_tables()


async def test_prune_matches_sqlite(pg: PG) -> None:
    m = Mirror(pg)
    await m.run(
        [
            create("old"),
            create("kid", "old", LINKED),
            create("keep"),
            create("orphan", "keep", EPHEMERAL),
            create("det", "keep", DETACHED),
        ]
    )
    await m.run([append_many("keep", 4), compact("keep", 1, 2), compact("keep", 3, 5)])
    await m.run([ArchiveSession("old"), append("det")])
    # Unlink the orphan by closing its parent without cascade, but keep it alive first.
    await m.run([create("p2"), create("orph2", "p2", EPHEMERAL), CloseSession("p2", False)])
    far_future = 2**62
    got = await m.run([Prune(far_future, True, far_future)])
    # old + kid, orph2; messages 1-4 (the note swallowed by the second compaction stays).
    assert got[0][1] == PruneResult(sessions=3, messages=4)
    await m.assert_same_tables()


async def test_import_matches_sqlite_and_replaces(pg: PG) -> None:
    m = Mirror(pg)
    # Written on SQLite only, then moved into PostgreSQL.
    m.run_lite(
        [
            create("root"),
            create("child", "root", LINKED),
            append_many("root", 3),
            append("child"),
            usage("root", 1, 4),
            SetPending("child", '{"z":[1,2]}'),
        ]
    )
    m.run_lite([compact("root", 1, 2)])
    lines = export_lines(m.lite, "root", include_subagents=True)
    ids, rows = parse_lines(lines)
    # Into an empty PostgreSQL schema: the same rows, timestamps included.
    got = await pg.run(
        [ImportSessions(ids, rows, "error"), append("root"), ImportSessions(ids, rows, "error")]
    )
    assert got[0] == (None, ["root", "child"])
    assert got[1] == (None, 5)
    assert isinstance(got[2][0], SessionExists)
    # "replace" drops what was written since (message 5) and keeps a child not in the export.
    await pg.values([create("other_kid", "root")])
    assert await pg.values([ImportSessions(ids, rows, "replace"), append("root")]) == [
        ["root", "child"],
        5,
    ]
    m.run_lite([create("other_kid", "root"), ImportSessions(ids, rows, "replace"), append("root")])
    await m.assert_same_tables()
    # Imported rows keep their timestamps (the appended message 5 has its own).
    times = "SELECT session_id, seq, created_at FROM {s}.messages WHERE seq < 5 ORDER BY 1, 2"
    lite_times = [tuple(r) for r in m.lite.execute(times.replace("{s}.", ""))]
    assert await pg.fetch(times) == lite_times


async def test_updated_at_is_touched_by_the_same_ops_as_on_sqlite(pg: PG) -> None:
    await pg.values([create(s) for s in "abcdef"])
    await pg.conn.execute(pg_schema.render("UPDATE {s}.sessions SET updated_at = 0", pg.schema))
    await pg.values(
        [
            append("a"),
            append_many("b", 2),
            ArchiveSession("c"),
            UpdateSessionPrompt("d", None),
            SetRoundIndex("e", 1),
            SetPending("e", None),
            usage("e", 1, 1),
            append("f"),
            compact("f", 1, 1),
        ]
    )
    touched = await pg.fetch("SELECT session_id FROM {s}.sessions WHERE updated_at > 0 ORDER BY 1")
    assert touched == [("a",), ("b",), ("c",), ("d",), ("f",)]


async def test_notify_names_the_sessions_a_batch_wrote(pg: PG) -> None:
    listener = await asyncpg.connect(pg_dsn())
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(pg.channel, lambda *args: heard.put_nowait(args[3]))
    try:
        await pg.values([create("b"), create("a"), create("a,b")])
        assert await asyncio.wait_for(heard.get(), 5) == "*"  # an id with a comma
        await pg.values([append("b"), append("a"), append("a")])
        assert await asyncio.wait_for(heard.get(), 5) == "a,b"
        await pg.run([append("nope")])  # wrote nothing: no notification
        await pg.values([CloseSession("b", True)])
        assert await asyncio.wait_for(heard.get(), 5) == "*"
        long_ids = [f"{i:04d}" + "x" * 60 for i in range(130)]
        await pg.values([create(s) for s in long_ids])
        assert await asyncio.wait_for(heard.get(), 5) == "*"  # past ~7,900 bytes
        await pg.values([append(long_ids[0])])
        assert await asyncio.wait_for(heard.get(), 5) == long_ids[0]
        await pg.values([Prune(None, True, None)])
        assert await asyncio.wait_for(heard.get(), 5) == "*"
        assert heard.empty()
    finally:
        await listener.close()


async def test_batch_committed_tells_whether_a_batch_id_committed(pg: PG) -> None:
    await pg.values([create("a")])
    assert (await committed(pg.conn, pg.schema, pg.last_batch_id))[0]
    await pg.run([append("nope")])  # every op rejected: the batch still commits its id
    assert (await committed(pg.conn, pg.schema, pg.last_batch_id))[0]
    assert not (await committed(pg.conn, pg.schema, "never-run"))[0]


async def test_a_concurrent_create_of_the_same_id_becomes_session_exists(pg: PG) -> None:
    await pg.values([create("a")])
    other = await asyncpg.connect(pg_dsn())
    try:
        # Another writer has created "x" but not committed yet: our insert waits for it.
        tx = other.transaction()
        await tx.start()
        await other.execute(
            pg_schema.render(
                "INSERT INTO {s}.sessions (session_id, created_at, updated_at) VALUES ('x', 1, 1);"
                "INSERT INTO {s}.session_state (session_id) VALUES ('x')",
                pg.schema,
            )
        )
        batch = asyncio.ensure_future(pg.run([append("a"), create("x"), append("a")]))
        await asyncio.sleep(0.3)
        assert not batch.done()
        await tx.commit()
        got = await asyncio.wait_for(batch, 10)
    finally:
        await other.close()
    assert [type(e) for e, _ in got] == [type(None), SessionExists, type(None)]
    assert [v for _, v in got] == [1, None, 2]


async def test_deadlocks_retry_the_batch_then_fail_every_op_typed(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pg.values([create("a")])
    real_lock = pg_batch._Batch.lock
    failures = {"left": 2}

    async def flaky_lock(self: Any, ids: list[str]) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        await real_lock(self, ids)

    monkeypatch.setattr(pg_batch._Batch, "lock", flaky_lock)
    assert await pg.values([append("a"), append("a")]) == [1, 2]
    failures["left"] = pg_batch.RETRIES + 1
    got = await pg.run([append("a"), append("a")])
    assert all(isinstance(e, DatabaseError) and e.sqlstate == "40P01" for e, _ in got)
    assert got[0][0] is not got[1][0]
    monkeypatch.undo()
    assert await pg.values([append("a")]) == [3]


async def test_a_connection_killed_before_commit_raises_connection_lost(pg: PG) -> None:
    await pg.values([create("a")])
    victim = await asyncpg.connect(pg_dsn())
    try:
        await pg.conn.execute("SELECT pg_terminate_backend($1)", victim.get_server_pid())
        await asyncio.sleep(0.1)
        with pytest.raises(ConnectionLost) as caught:
            await pg.run([append("a")], conn=victim)
        assert caught.value.outcomes is None
        assert not (await committed(pg.conn, pg.schema, pg.last_batch_id))[0]
    finally:
        await victim.close()


class DropsAtCommit:
    """A connection whose COMMIT reaches the server, but whose answer is lost."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, sql: str, *args: Any) -> str:
        status: str = await self._conn.execute(sql, *args)
        if sql == "COMMIT":
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
        return status


async def test_a_connection_lost_during_commit_hands_back_the_outcomes(pg: PG) -> None:
    await pg.values([create("a")])
    with pytest.raises(ConnectionLost) as caught:
        await pg.run([append("a"), append("nope")], conn=DropsAtCommit(pg.conn))
    lost = caught.value
    assert lost.batch_id == pg.last_batch_id
    assert lost.outcomes is not None
    assert lost.outcomes[0] == (None, 1)
    assert isinstance(lost.outcomes[1][0], SessionNotFound)
    assert (await committed(pg.conn, pg.schema, lost.batch_id))[0]


async def test_four_writers_on_the_same_sixteen_sessions(pg: PG) -> None:
    sessions = [f"s{i:02d}" for i in range(16)]
    await pg.values([create(s) for s in sessions])
    conns = await asyncio.gather(*(asyncpg.connect(pg_dsn()) for _ in range(4)))
    acked: dict[str, list[int]] = {s: [] for s in sessions}

    async def writer(conn: Any, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(25):
            targets = [rng.choice(sessions) for _ in range(rng.randint(1, 40))]
            outcomes = await pg.run([append(s) for s in targets], conn=conn)
            for s, (error, seq) in zip(targets, outcomes, strict=True):
                assert error is None, error
                acked[s].append(seq)

    try:
        await asyncio.gather(*(writer(c, i) for i, c in enumerate(conns)))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    stored = await pg.fetch(
        "SELECT session_id, array_agg(seq ORDER BY seq) FROM {s}.messages GROUP BY session_id"
    )
    for sid, seqs in stored:
        assert seqs == list(range(1, len(seqs) + 1))  # gapless
        assert sorted(acked[sid]) == seqs  # every acknowledged seq, each once
    assert sum(len(v) for v in acked.values()) == sum(len(s) for _, s in stored)
