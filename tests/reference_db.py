"""Build a database file exactly as power-loop 0.2.0 leaves it, with plain sqlite3.

The DDL below is the reference store's schema (a schema fact, restated here), and the rows are
what its methods write: a root with pending tool calls and usage, linked and detached children,
and a compaction whose note took the next seq (so, read by seq, it stands after newer messages).
"""

from __future__ import annotations

import json
import sqlite3

REFERENCE_DDL = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    system_prompt TEXT, model TEXT, config_json TEXT, status TEXT NOT NULL DEFAULT 'active',
    kind TEXT NOT NULL DEFAULT 'root', parent_session_id TEXT, spawn_tool_call_id TEXT,
    spawn_depth INTEGER NOT NULL DEFAULT 0, lifecycle TEXT NOT NULL DEFAULT 'ephemeral',
    metadata_json TEXT
);
CREATE INDEX IF NOT EXISTS idx_sessions_parent ON sessions(parent_session_id);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL, name TEXT,
    content TEXT, tool_calls_json TEXT, tool_call_id TEXT, round_index INTEGER,
    state TEXT NOT NULL DEFAULT 'active', meta_json TEXT, created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX IF NOT EXISTS idx_messages_session_state ON messages(session_id, state, seq);
CREATE TABLE IF NOT EXISTS compactions (
    session_id TEXT NOT NULL, compact_seq INTEGER NOT NULL, note_seq INTEGER NOT NULL,
    from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL, before_tokens INTEGER,
    after_tokens INTEGER, round_index INTEGER, created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, compact_seq)
);
CREATE TABLE IF NOT EXISTS usage_rounds (
    session_id TEXT NOT NULL, round_index INTEGER NOT NULL, prompt_tokens INTEGER,
    completion_tokens INTEGER, total_tokens INTEGER, model TEXT, created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, round_index)
);
CREATE TABLE IF NOT EXISTS session_state (
    session_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL DEFAULT 1,
    round_index INTEGER NOT NULL DEFAULT 0, last_compact_seq INTEGER NOT NULL DEFAULT 0,
    pending_json TEXT
);
"""

ROOT = "sess_00000000000000000000root"
LINKED = "sess_0000000000000000000linked"
DETACHED = "sess_000000000000000000detached"
T0 = 1_700_000_000_000
PENDING = {"tool_calls": [{"id": "call_9", "function": {"name": "f", "arguments": "{}"}}]}


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_reference_db(path: str, *, extra_messages: int = 0) -> None:
    """Write the fixture. *extra_messages* pads the root (to make migration take a while)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(REFERENCE_DDL)
    conn.execute("BEGIN")
    for sid, parent, depth, lifecycle, kind in (
        (ROOT, None, 0, "ephemeral", "root"),
        (LINKED, ROOT, 1, "linked", "subagent"),
        (DETACHED, ROOT, 1, "detached", "subagent"),
    ):
        conn.execute(
            "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (sid, T0, T0 + 5, "sys", "gpt-x", _dumps({"t": 1}), "active", kind, parent,
             "call_spawn" if parent else None, depth, lifecycle, _dumps({"who": sid})),
        )  # fmt: skip
        conn.execute("INSERT INTO session_state (session_id) VALUES (?)", (sid,))
    # Root: 6 messages, then a compaction of 1..3 whose note took seq 7.
    rows = [
        (1, "user", None, "hello", None, None),
        (2, "assistant", None, None, _dumps([{"id": "call_1"}]), None),
        (3, "tool", "f", "r1", None, "call_1"),
        (4, "user", None, "next", None, None),
        (5, "assistant", None, "ok", None, None),
        (6, "user", None, "more", None, None),
    ]
    for seq, role, name, content, calls, call_id in rows:
        conn.execute(
            "INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (ROOT, seq, role, name, content, calls, call_id, 0, "active", "{}", T0 + seq),
        )
    conn.execute(
        "UPDATE messages SET state='compacted_out' WHERE session_id=? AND seq BETWEEN 1 AND 3",
        (ROOT,),
    )
    meta = {"compacted_at_round": 1, "from_seq": 1, "to_seq": 3, "original_tokens": 300,
            "summary_tokens": 30}  # fmt: skip
    conn.execute(
        "INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (ROOT, 7, "system", "compact_note", "summary", None, None, 1, "active", _dumps(meta),
         T0 + 7),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO compactions VALUES (?,?,?,?,?,?,?,?,?)",
        (ROOT, 1, 7, 1, 3, 300, 30, 1, T0 + 7),
    )
    for i in range(extra_messages):
        conn.execute(
            "INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (ROOT, 8 + i, "user", None, "pad " * 20, None, None, 2, "active", "{}", T0),
        )
    conn.execute(
        "UPDATE session_state SET next_seq=?, round_index=2, last_compact_seq=1, pending_json=? "
        "WHERE session_id=?",
        (8 + extra_messages, _dumps(PENDING), ROOT),
    )
    conn.execute(
        "INSERT INTO usage_rounds VALUES (?,?,?,?,?,?,?)", (ROOT, 1, 100, 20, 120, "gpt-x", T0)
    )
    conn.execute("COMMIT")
    conn.close()
