"""Write ops: one small class per public write, built (and its JSON encoded) in the caller's
coroutine, applied by :mod:`._batch` on the writer thread.

Contract with the batch: ``apply`` raises :class:`InvalidArgument` only *before* it has written
or buffered anything, so a rejected op needs no rollback.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from ._batch import Batch
from ._errors import InvalidCompactionRange, SessionExists, SessionNotFound, SpawnDepthExceeded
from ._models import MessageState, SessionKind, SessionStatus, SubagentLifecycle

_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, name, content, tool_calls_json, "
    "tool_call_id, round_index, state, meta_json, created_at, position) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)"
)
_SET_ROUND_INDEX = "UPDATE session_state SET round_index = ? WHERE session_id = ?"
_SET_PENDING = "UPDATE session_state SET pending_json = ? WHERE session_id = ?"
_UPSERT_USAGE = (
    "INSERT OR REPLACE INTO usage_rounds (session_id, round_index, prompt_tokens, "
    "completion_tokens, total_tokens, model, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_CHILD_TABLES = ("messages", "compactions", "usage_rounds", "session_state", "sessions")


class WriteOp:
    """A write waiting for the writer. ``future`` resolves after its batch committed."""

    __slots__ = ("future",)

    future: asyncio.Future[Any]
    #: The session the op writes to (for create_session: the one it creates).
    session_id: str

    def apply(self, batch: Batch) -> Any:
        raise NotImplementedError


class CreateSession(WriteOp):
    __slots__ = (
        "config_json",
        "kind_value",
        "lifecycle",
        "metadata_json",
        "model",
        "parent_session_id",
        "session_id",
        "spawn_tool_call_id",
        "system_prompt",
    )

    def __init__(
        self,
        session_id: str,
        system_prompt: str | None,
        model: str | None,
        config_json: str | None,
        parent_session_id: str | None,
        spawn_tool_call_id: str | None,
        kind: SessionKind,
        lifecycle: SubagentLifecycle,
        metadata_json: str | None,
    ) -> None:
        self.session_id = session_id
        self.system_prompt = system_prompt
        self.model = model
        self.config_json = config_json
        self.parent_session_id = parent_session_id
        self.spawn_tool_call_id = spawn_tool_call_id
        self.kind_value = kind.value
        self.lifecycle = lifecycle.value
        self.metadata_json = metadata_json

    def apply(self, batch: Batch) -> str:
        conn = batch.conn
        depth = 0
        kind = self.kind_value
        if self.parent_session_id is not None:
            r = conn.execute(
                "SELECT spawn_depth FROM sessions WHERE session_id = ?",
                (self.parent_session_id,),
            ).fetchone()
            if r is None:
                raise SessionNotFound(self.parent_session_id, "parent session")
            depth = r[0] + 1
            if depth > batch.max_spawn_depth:
                raise SpawnDepthExceeded(self.parent_session_id, depth, batch.max_spawn_depth)
            kind = SessionKind.SUBAGENT.value
        exists = conn.execute(
            "SELECT 1 FROM sessions WHERE session_id = ?", (self.session_id,)
        ).fetchone()
        if exists is not None:
            raise SessionExists(self.session_id)
        conn.execute(
            "INSERT INTO sessions (session_id, created_at, updated_at, system_prompt, model, "
            "config_json, status, kind, parent_session_id, spawn_tool_call_id, spawn_depth, "
            "lifecycle, metadata_json) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?)",
            (
                self.session_id, batch.now, batch.now, self.system_prompt, self.model,
                self.config_json, kind, self.parent_session_id, self.spawn_tool_call_id,
                depth, self.lifecycle, self.metadata_json,
            ),
        )  # fmt: skip
        conn.execute("INSERT INTO session_state (session_id) VALUES (?)", (self.session_id,))
        batch.created(self.session_id)
        return self.session_id


class ArchiveSession(WriteOp):
    __slots__ = ("session_id",)

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id

    def apply(self, batch: Batch) -> None:
        batch.require(self.session_id)
        batch.conn.execute(
            "UPDATE sessions SET status = ? WHERE session_id = ?",
            (SessionStatus.ARCHIVED.value, self.session_id),
        )
        batch.touch(self.session_id)


class UpdateSessionPrompt(WriteOp):
    __slots__ = ("session_id", "system_prompt")

    def __init__(self, session_id: str, system_prompt: str | None) -> None:
        self.session_id = session_id
        self.system_prompt = system_prompt

    def apply(self, batch: Batch) -> None:
        batch.require(self.session_id)
        batch.conn.execute(
            "UPDATE sessions SET system_prompt = ? WHERE session_id = ?",
            (self.system_prompt, self.session_id),
        )
        batch.touch(self.session_id)


class CloseSession(WriteOp):
    __slots__ = ("cascade", "session_id")

    def __init__(self, session_id: str, cascade: bool) -> None:
        self.session_id = session_id
        self.cascade = cascade

    def apply(self, batch: Batch) -> int:
        conn = batch.conn
        batch.flush()
        if self.cascade:
            # The session and every descendant reached through non-detached links.
            doomed = [
                r[0]
                for r in conn.execute(
                    "WITH RECURSIVE doomed(id) AS (SELECT session_id FROM sessions "
                    "WHERE session_id = ? UNION SELECT s.session_id FROM sessions s "
                    "JOIN doomed d ON s.parent_session_id = d.id WHERE s.lifecycle != ?) "
                    "SELECT id FROM doomed",
                    (self.session_id, SubagentLifecycle.DETACHED.value),
                )
            ]
        else:
            found = conn.execute(
                "SELECT 1 FROM sessions WHERE session_id = ?", (self.session_id,)
            ).fetchone()
            doomed = [self.session_id] if found else []
        if not doomed:
            return 0
        ids = [(sid,) for sid in doomed]
        # Survivors (detached children, or every child without cascade) become roots of their
        # own rather than pointing at a session that no longer exists.
        conn.executemany(
            "UPDATE sessions SET parent_session_id = NULL WHERE parent_session_id = ?", ids
        )
        for table in _CHILD_TABLES:
            conn.executemany(f"DELETE FROM {table} WHERE session_id = ?", ids)
        batch.forget(doomed)
        return len(doomed)


class AppendMessage(WriteOp):
    __slots__ = ("params", "session_id")

    def __init__(
        self,
        session_id: str,
        role: str,
        name: str | None,
        content: str | None,
        tool_calls_json: str | None,
        tool_call_id: str | None,
        round_index: int | None,
        meta_json: str | None,
    ) -> None:
        self.session_id = session_id
        # Stored pre-packed in INSERT order; seq, created_at and position are filled in apply.
        self.params = (
            session_id, role, name, content, tool_calls_json, tool_call_id, round_index,
            meta_json,
        )  # fmt: skip

    def apply(self, batch: Batch) -> int:
        p = self.params
        sid = self.session_id
        seq = batch.take_seqs(sid)
        batch.buffer(
            _INSERT_MESSAGE, (sid, seq, p[1], p[2], p[3], p[4], p[5], p[6], p[7], batch.now, seq)
        )
        batch.touch(sid)
        return seq


class AppendMessages(WriteOp):
    """Several messages of one session in one op: all of them commit, or none."""

    __slots__ = ("rows", "session_id")

    def __init__(self, session_id: str, rows: list[tuple[Any, ...]]) -> None:
        # Each row is AppendMessage.params without the session id.
        self.session_id = session_id
        self.rows = rows

    def apply(self, batch: Batch) -> list[int]:
        sid = self.session_id
        first = batch.take_seqs(sid, len(self.rows))
        now = batch.now
        for seq, p in enumerate(self.rows, first):
            batch.buffer(
                _INSERT_MESSAGE, (sid, seq, p[0], p[1], p[2], p[3], p[4], p[5], p[6], now, seq)
            )
        batch.touch(sid)
        return list(range(first, first + len(self.rows)))


class RecordCompaction(WriteOp):
    __slots__ = (
        "after_tokens",
        "before_tokens",
        "from_seq",
        "note_content",
        "note_meta_json",
        "round_index",
        "session_id",
        "to_seq",
    )

    def __init__(
        self,
        session_id: str,
        from_seq: int,
        to_seq: int,
        note_content: str,
        before_tokens: int | None,
        after_tokens: int | None,
        round_index: int | None,
        note_meta_json: str,
    ) -> None:
        self.session_id = session_id
        self.from_seq = from_seq
        self.to_seq = to_seq
        self.note_content = note_content
        self.before_tokens = before_tokens
        self.after_tokens = after_tokens
        self.round_index = round_index
        self.note_meta_json = note_meta_json

    def apply(self, batch: Batch) -> tuple[int, int]:
        conn = batch.conn
        sid = self.session_id
        batch.flush()
        next_seq = batch.peek_next_seq(sid)
        if self.to_seq >= next_seq:
            raise InvalidCompactionRange(
                sid, self.from_seq, self.to_seq, f"the last seq is {next_seq - 1}"
            )
        first_position, active = conn.execute(
            "SELECT MIN(position), COUNT(*) FROM messages "
            "WHERE session_id = ? AND state = 'active' AND seq BETWEEN ? AND ?",
            (sid, self.from_seq, self.to_seq),
        ).fetchone()
        if not active:
            raise InvalidCompactionRange(
                sid, self.from_seq, self.to_seq, "no active message in the range"
            )
        compact_seq = (
            conn.execute(
                "SELECT last_compact_seq FROM session_state WHERE session_id = ?", (sid,)
            ).fetchone()[0]
            + 1
        )
        note_seq = batch.take_seqs(sid)
        conn.execute(
            "UPDATE messages SET state = ? "
            "WHERE session_id = ? AND state = 'active' AND seq BETWEEN ? AND ?",
            (MessageState.COMPACTED_OUT.value, sid, self.from_seq, self.to_seq),
        )
        conn.execute(
            _INSERT_MESSAGE,
            (
                sid, note_seq, "system", "compact_note", self.note_content, None, None,
                self.round_index, self.note_meta_json, batch.now, first_position,
            ),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO compactions (session_id, compact_seq, note_seq, from_seq, to_seq, "
            "before_tokens, after_tokens, round_index, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sid, compact_seq, note_seq, self.from_seq, self.to_seq, self.before_tokens,
                self.after_tokens, self.round_index, batch.now,
            ),
        )  # fmt: skip
        conn.execute(
            "UPDATE session_state SET last_compact_seq = ? WHERE session_id = ?",
            (compact_seq, sid),
        )
        batch.touch(sid)
        return compact_seq, note_seq


class _BufferedUpdate(WriteOp):
    """A one-statement write to an existing session, merged into the batch's executemany."""

    __slots__ = ("params", "session_id")
    sql: ClassVar[str]

    def __init__(self, session_id: str, params: tuple[Any, ...]) -> None:
        self.session_id = session_id
        self.params = params

    def apply(self, batch: Batch) -> None:
        batch.require(self.session_id)
        batch.buffer(self.sql, self.params)


class SetRoundIndex(_BufferedUpdate):
    __slots__ = ()
    sql = _SET_ROUND_INDEX

    def __init__(self, session_id: str, round_index: int) -> None:
        super().__init__(session_id, (round_index, session_id))


class SetPending(_BufferedUpdate):
    __slots__ = ()
    sql = _SET_PENDING

    def __init__(self, session_id: str, pending_json: str | None) -> None:
        super().__init__(session_id, (pending_json, session_id))


class RecordUsage(_BufferedUpdate):
    __slots__ = ()
    sql = _UPSERT_USAGE

    def __init__(
        self,
        session_id: str,
        round_index: int,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        total_tokens: int | None,
        model: str | None,
        created_at: int,
    ) -> None:
        super().__init__(
            session_id,
            (session_id, round_index, prompt_tokens, completion_tokens, total_tokens, model,
             created_at),
        )  # fmt: skip
