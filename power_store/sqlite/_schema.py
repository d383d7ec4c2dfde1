"""Tables, pragmas and migrations.

Schema versions live in ``PRAGMA user_version``:

* 0 — an empty file, or a file written by power-loop 0.2.0 (its five tables, no version).
* 1 — the reference tables plus ``messages.position``: the logical place of a message in the
  active history. ``seq`` stays the allocation id; a compaction note takes the position of the
  first message it replaces, so it is read back where that range stood.
* 2 — fork lineage (``sessions.forked_from``, ``sessions.forked_at_seq``) and the indexes that
  keep :meth:`list_sessions` and :meth:`prune` fast on large stores.

Each migration runs inside one ``BEGIN IMMEDIATE … COMMIT`` together with the new
``user_version`` (SQLite DDL is transactional), so a process killed mid-migration leaves the
file exactly as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .._errors import SchemaTooNew

# The five tables of power-loop 0.2.0, column for column, so its files open unchanged.
_REFERENCE_TABLES = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id          TEXT PRIMARY KEY,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    system_prompt       TEXT,
    model               TEXT,
    config_json         TEXT,
    status              TEXT NOT NULL DEFAULT 'active',
    kind                TEXT NOT NULL DEFAULT 'root',
    parent_session_id   TEXT,
    spawn_tool_call_id  TEXT,
    spawn_depth         INTEGER NOT NULL DEFAULT 0,
    lifecycle           TEXT NOT NULL DEFAULT 'ephemeral',
    metadata_json       TEXT
);
CREATE INDEX IF NOT EXISTS idx_sessions_parent ON sessions(parent_session_id);
CREATE TABLE IF NOT EXISTS messages (
    session_id      TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL,
    name            TEXT,
    content         TEXT,
    tool_calls_json TEXT,
    tool_call_id    TEXT,
    round_index     INTEGER,
    state           TEXT NOT NULL DEFAULT 'active',
    meta_json       TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS compactions (
    session_id      TEXT NOT NULL,
    compact_seq     INTEGER NOT NULL,
    note_seq        INTEGER NOT NULL,
    from_seq        INTEGER NOT NULL,
    to_seq          INTEGER NOT NULL,
    before_tokens   INTEGER,
    after_tokens    INTEGER,
    round_index     INTEGER,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (session_id, compact_seq)
);
CREATE TABLE IF NOT EXISTS usage_rounds (
    session_id        TEXT NOT NULL,
    round_index       INTEGER NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    total_tokens      INTEGER,
    model             TEXT,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (session_id, round_index)
);
CREATE TABLE IF NOT EXISTS session_state (
    session_id        TEXT PRIMARY KEY,
    next_seq          INTEGER NOT NULL DEFAULT 1,
    round_index       INTEGER NOT NULL DEFAULT 0,
    last_compact_seq  INTEGER NOT NULL DEFAULT 0,
    pending_json      TEXT
);
"""


def _v1_logical_order(conn: sqlite3.Connection) -> None:
    for statement in _REFERENCE_TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("ALTER TABLE messages ADD COLUMN position INTEGER")
    conn.execute("UPDATE messages SET position = seq")
    # Place every existing compaction note where its range began. Later compactions may swallow
    # earlier notes, so go in compaction order and take the smallest position in the range.
    notes = conn.execute(
        "SELECT session_id, note_seq, from_seq, to_seq FROM compactions "
        "ORDER BY session_id, compact_seq"
    ).fetchall()
    for session_id, note_seq, from_seq, to_seq in notes:
        conn.execute(
            "UPDATE messages SET position = COALESCE(("
            "  SELECT MIN(position) FROM messages"
            "  WHERE session_id = ? AND seq BETWEEN ? AND ? AND seq != ?"
            "), position) WHERE session_id = ? AND seq = ?",
            (session_id, from_seq, to_seq, note_seq, session_id, note_seq),
        )
    # The active history is read by position; the reference's (state, seq) index is replaced.
    conn.execute("DROP INDEX IF EXISTS idx_messages_session_state")
    conn.execute("CREATE INDEX idx_messages_active ON messages(session_id, state, position, seq)")
    # power-loop 0.2.0 could leave next_seq behind a stored message (its writes were not
    # atomic), wedging the session on a UNIQUE error; lift it past every stored seq.
    conn.execute(
        "UPDATE session_state SET next_seq = ("
        "  SELECT MAX(seq) + 1 FROM messages m WHERE m.session_id = session_state.session_id"
        ") WHERE next_seq <= ("
        "  SELECT MAX(seq) FROM messages m WHERE m.session_id = session_state.session_id)"
    )


def _v2_listing_and_lineage(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE sessions ADD COLUMN forked_from TEXT")
    conn.execute("ALTER TABLE sessions ADD COLUMN forked_at_seq INTEGER")
    # Keyset pages walk these in order (and backwards for descending pages); session_id makes
    # the key unique, so a page boundary never falls between two equal timestamps.
    conn.execute("CREATE INDEX idx_sessions_created ON sessions(created_at, session_id)")
    conn.execute("CREATE INDEX idx_sessions_updated ON sessions(updated_at, session_id)")
    # No (status, …) index: without ANALYZE the planner would pick it for a status filter and
    # then sort every matching row, instead of walking the order index (measured 100 ms vs 3 ms
    # per page at 100k sessions). prune() finds old archived sessions by updated_at.
    # prune() drops old compacted originals by age; only those rows are indexed.
    conn.execute(
        "CREATE INDEX idx_messages_compacted ON messages(created_at) WHERE state = 'compacted_out'"
    )


#: MIGRATIONS[i] brings a file from version i to version i + 1.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _v1_logical_order,
    _v2_listing_and_lineage,
)
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`, one transaction per step."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read inside the write lock: another process may have migrated meanwhile.
            version = user_version(conn)
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(path, version, SCHEMA_VERSION)
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            MIGRATIONS[version](conn)
            # user_version cannot be bound as a parameter; it is our own integer.
            conn.execute(f"PRAGMA user_version = {version + 1:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def configure_writer(conn: sqlite3.Connection, *, synchronous: str, busy_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() not in ("wal", "memory"):
        raise sqlite3.OperationalError(f"could not switch to WAL (journal_mode is {mode})")
    # synchronous is whitelisted by the caller ("NORMAL" or "FULL").
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if mode.lower() == "wal":
        # The checkpointer does this off the writer's commits (see _checkpointer.py).
        conn.execute("PRAGMA wal_autocheckpoint = 0")


def configure_reader(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
