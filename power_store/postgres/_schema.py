"""The PostgreSQL schema, its version, and the migration that brings a schema up to date.

Version 1 is the SQLite schema v2 (same tables, columns and indexes), plus ``batches`` (the ids
of committed batches, so a writer whose connection dropped during COMMIT can learn the outcome)
and ``schema_version``. Each migration step runs in one transaction under a transaction-level
advisory lock derived from the schema name, re-reading the version inside the lock: many
processes starting at once migrate exactly once, and PostgreSQL DDL is transactional, so a
process killed mid-step leaves the schema as it was.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import InvalidArgument, SchemaTooNew

#: ``{s}`` stands for the quoted schema name (see :func:`render`).
SCHEMA_V1 = """\
-- The PostgreSQL schema of power_store, version 1 (the SQLite schema v2, same tables,
-- columns and indexes; {s} is the quoted, whitelisted schema name, e.g. "ps_test_1").
-- JSON columns stay TEXT so exports are byte-exact (jsonb reorders keys). Ids (and model, by
-- which usage is grouped) sort in code-point order (COLLATE "C"), as SQLite's BINARY does,
-- whatever the database's locale: keyset pages, exports and sums come out in the same order on
-- both backends.
CREATE TABLE IF NOT EXISTS {s}.sessions (
    session_id          TEXT COLLATE "C" PRIMARY KEY,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    system_prompt       TEXT,
    model               TEXT,
    config_json         TEXT,
    status              TEXT NOT NULL DEFAULT 'active',
    kind                TEXT NOT NULL DEFAULT 'root',
    parent_session_id   TEXT COLLATE "C",
    spawn_tool_call_id  TEXT,
    spawn_depth         BIGINT NOT NULL DEFAULT 0,
    lifecycle           TEXT NOT NULL DEFAULT 'ephemeral',
    metadata_json       TEXT,
    forked_from         TEXT COLLATE "C",
    forked_at_seq       BIGINT
);
CREATE INDEX IF NOT EXISTS idx_sessions_parent ON {s}.sessions(parent_session_id);
CREATE INDEX IF NOT EXISTS idx_sessions_created ON {s}.sessions(created_at, session_id);
CREATE INDEX IF NOT EXISTS idx_sessions_updated ON {s}.sessions(updated_at, session_id);
CREATE TABLE IF NOT EXISTS {s}.messages (
    session_id      TEXT COLLATE "C" NOT NULL,
    seq             BIGINT NOT NULL,
    role            TEXT NOT NULL,
    name            TEXT,
    content         TEXT,
    tool_calls_json TEXT,
    tool_call_id    TEXT,
    round_index     BIGINT,
    state           TEXT NOT NULL DEFAULT 'active',
    meta_json       TEXT,
    created_at      BIGINT NOT NULL,
    position        BIGINT,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX IF NOT EXISTS idx_messages_active ON {s}.messages(session_id, state, position, seq);
CREATE INDEX IF NOT EXISTS idx_messages_compacted ON {s}.messages(created_at)
    WHERE state = 'compacted_out';
CREATE TABLE IF NOT EXISTS {s}.compactions (
    session_id      TEXT COLLATE "C" NOT NULL,
    compact_seq     BIGINT NOT NULL,
    note_seq        BIGINT NOT NULL,
    from_seq        BIGINT NOT NULL,
    to_seq          BIGINT NOT NULL,
    before_tokens   BIGINT,
    after_tokens    BIGINT,
    round_index     BIGINT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (session_id, compact_seq)
);
CREATE TABLE IF NOT EXISTS {s}.usage_rounds (
    session_id        TEXT COLLATE "C" NOT NULL,
    round_index       BIGINT NOT NULL,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    total_tokens      BIGINT,
    model             TEXT COLLATE "C",
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (session_id, round_index)
);
CREATE TABLE IF NOT EXISTS {s}.session_state (
    session_id        TEXT COLLATE "C" PRIMARY KEY,
    next_seq          BIGINT NOT NULL DEFAULT 1,
    round_index       BIGINT NOT NULL DEFAULT 0,
    last_compact_seq  BIGINT NOT NULL DEFAULT 0,
    pending_json      TEXT
);
-- One row per committed batch (its id written in the batch's own transaction), so a writer
-- whose connection dropped during COMMIT can learn whether the batch committed; a batch of
-- appends run as one statement also keeps the seqs it handed out (JSON [[row, seq], ...]).
-- Old rows are deleted by the writer (older than an hour).
CREATE TABLE IF NOT EXISTS {s}.batches (
    batch_id      TEXT PRIMARY KEY,
    committed_at  BIGINT NOT NULL,
    outcome       TEXT
);
-- The schema version, one row.
CREATE TABLE IF NOT EXISTS {s}.schema_version (
    version BIGINT NOT NULL
);
"""

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def schema_identifier(name: str) -> str:
    """*name* double-quoted, after checking it against a whitelist: it is pasted into SQL."""
    if not isinstance(name, str) or _IDENTIFIER.fullmatch(name) is None:
        raise InvalidArgument(
            f"schema must match [a-z_][a-z0-9_]{{0,62}} (lower-case letters, digits, _), "
            f"got {name!r}"
        )
    return f'"{name}"'


@functools.lru_cache(maxsize=512)
def render(template: str, schema: str) -> str:
    """*template* with every ``{s}`` replaced by the quoted schema name.

    ``str.replace`` rather than ``str.format``: SQL may hold braces of its own (array literals).
    """
    return template.replace("{s}", schema_identifier(schema))


def lock_key(schema: str) -> int:
    """The advisory lock key of *schema*: a stable signed 64-bit hash of its name."""
    digest = hashlib.blake2b(f"power_store:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _v1_tables(conn: Any, schema: str) -> None:
    # No arguments: asyncpg sends it as one simple query, all statements at once.
    await conn.execute(render(SCHEMA_V1, schema))


#: MIGRATIONS[i] brings a schema from version i to version i + 1.
MIGRATIONS: tuple[Callable[[Any, str], Awaitable[None]], ...] = (_v1_tables,)
SCHEMA_VERSION = len(MIGRATIONS)


async def schema_version(conn: Any, schema: str) -> int:
    """The schema's version; 0 when it has no version table yet."""
    table = await conn.fetchval(
        "SELECT to_regclass($1)", f"{schema_identifier(schema)}.schema_version"
    )
    if table is None:
        return 0
    version = await conn.fetchval(render("SELECT max(version) FROM {s}.schema_version", schema))
    return 0 if version is None else int(version)


async def migrate(conn: Any, schema: str) -> None:
    """Create *schema* if needed and bring it to :data:`SCHEMA_VERSION`, one step per
    transaction. Raises :class:`SchemaTooNew` for a schema written by a newer power_store."""
    key = lock_key(schema)
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
            # Under the lock too: concurrent CREATE SCHEMA IF NOT EXISTS can fail with a
            # unique violation on pg_namespace.
            await conn.execute(render("CREATE SCHEMA IF NOT EXISTS {s}", schema))
            # Read inside the lock: another process may have migrated meanwhile.
            version = await schema_version(conn, schema)
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(f"schema {schema}", version, SCHEMA_VERSION)
            if version == SCHEMA_VERSION:
                return
            await MIGRATIONS[version](conn, schema)
            await conn.execute(render("DELETE FROM {s}.schema_version", schema))
            await conn.execute(
                render("INSERT INTO {s}.schema_version (version) VALUES ($1)", schema), version + 1
            )
