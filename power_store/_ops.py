"""Write ops: one small data class per public write, built (and its JSON encoded) in the
caller's coroutine, queued to the writer, and applied by the backend's batch code
(``sqlite/_apply.py``, ``postgres/_batch.py``) — this module knows no SQL.

Contract with the backends: an op is checked and encoded before it is queued, so a backend
only meets errors that depend on the database (unknown session, bad range, an id taken).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._models import SessionKind, SubagentLifecycle

#: The layout of ``AppendMessage.params`` (and, without ``session_id``, of each row of
#: ``AppendMessages.rows``); ``seq``, ``created_at`` and ``position`` are the backend's.
MESSAGE_PARAMS = (
    "session_id", "role", "name", "content", "tool_calls_json", "tool_call_id", "round_index",
    "meta_json",
)  # fmt: skip


class WriteOp:
    """A write waiting for the writer. ``future`` resolves after its batch committed."""

    __slots__ = ("future",)

    future: asyncio.Future[Any]
    #: The session the op writes to (for create_session: the one it creates).
    session_id: str


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


class ArchiveSession(WriteOp):
    __slots__ = ("session_id",)

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id


class UpdateSessionPrompt(WriteOp):
    __slots__ = ("session_id", "system_prompt")

    def __init__(self, session_id: str, system_prompt: str | None) -> None:
        self.session_id = session_id
        self.system_prompt = system_prompt


class CloseSession(WriteOp):
    __slots__ = ("cascade", "session_id")

    def __init__(self, session_id: str, cascade: bool) -> None:
        self.session_id = session_id
        self.cascade = cascade


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
        # Pre-packed once, in the column order of MESSAGE_PARAMS: the hottest op of all.
        self.params = (
            session_id, role, name, content, tool_calls_json, tool_call_id, round_index,
            meta_json,
        )  # fmt: skip


class AppendMessages(WriteOp):
    """Several messages of one session in one op: all of them commit, or none."""

    __slots__ = ("rows", "session_id")

    def __init__(self, session_id: str, rows: list[tuple[Any, ...]]) -> None:
        # Each row is AppendMessage.params without the session id.
        self.session_id = session_id
        self.rows = rows


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


class _SessionUpdate(WriteOp):
    """A one-statement write to an existing session; backends merge these set-wise."""

    __slots__ = ("params", "session_id")

    def __init__(self, session_id: str, params: tuple[Any, ...]) -> None:
        self.session_id = session_id
        self.params = params


class SetRoundIndex(_SessionUpdate):
    """``params``: (round_index, session_id)."""

    __slots__ = ()

    def __init__(self, session_id: str, round_index: int) -> None:
        super().__init__(session_id, (round_index, session_id))


class SetPending(_SessionUpdate):
    """``params``: (pending_json, session_id)."""

    __slots__ = ()

    def __init__(self, session_id: str, pending_json: str | None) -> None:
        super().__init__(session_id, (pending_json, session_id))


class RecordUsage(_SessionUpdate):
    """``params``: (session_id, round_index, prompt_tokens, completion_tokens, total_tokens,
    model, created_at) — the usage row; an existing row of the round is replaced."""

    __slots__ = ()

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


class ForkSession(WriteOp):
    """A new root session holding a copy of *source*'s active history up to *at_seq*.

    What the fork holds, on every backend, and why:

    * the active messages up to and including ``at_seq`` in logical order, with their ``seq``,
      ``position`` and ``created_at`` unchanged, so a seq means the same message in both;
    * the compaction audit rows of the notes it copied (compacted-out originals stay behind:
      they are not part of the active history);
    * the state those messages imply — ``next_seq`` right after the last seq copied, the
      highest ``round_index`` among them; ``pending`` tool calls only for a fork of the whole
      history (``at_seq=None``), since a fork at an earlier point has not made those calls;
      ``last_compact_seq`` is kept so the fork's own compactions never reuse a copied number;
    * the source's system prompt, model, config and metadata (metadata may be replaced);
    * no usage rows: tokens were spent by the source, and summing both must not count them
      twice.

    Lineage lives in the ``forked_from`` / ``forked_at_seq`` columns, read with
    :meth:`AsyncSessionStore.get_lineage`, so :class:`SessionRow` keeps exactly the fields of
    power-loop 0.2.0.
    """

    __slots__ = ("at_seq", "metadata_json", "session_id", "source")

    def __init__(
        self, source: str, at_seq: int | None, new_session_id: str, metadata_json: str | None
    ) -> None:
        self.source = source
        self.at_seq = at_seq
        self.session_id = new_session_id  # the session the op creates
        self.metadata_json = metadata_json


class ImportSessions(WriteOp):
    """The checked rows of an export (see :mod:`._export`), written whole or not at all."""

    __slots__ = ("ids", "on_conflict", "rows", "session_id")

    def __init__(
        self, ids: list[str], rows: dict[str, list[tuple[Any, ...]]], on_conflict: str
    ) -> None:
        self.session_id = ids[0]  # the exported root
        self.ids = ids
        #: table name -> rows, each in the column order of that table in ``_export.TABLES``.
        self.rows = rows
        self.on_conflict = on_conflict


class Prune(WriteOp):
    """Delete what retention no longer needs, in one transaction."""

    __slots__ = ("archived_before", "compacted_before", "orphaned_subagents", "session_id")

    def __init__(
        self, archived_before: int | None, orphaned_subagents: bool, compacted_before: int | None
    ) -> None:
        # Prune writes no single session; "" is never a session id.
        self.session_id = ""
        self.archived_before = archived_before
        self.orphaned_subagents = orphaned_subagents
        self.compacted_before = compacted_before
