"""Public enums, row types and constants — the vocabulary shared with power-loop 0.2.0."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

#: Where :meth:`AsyncSessionStore.open` puts the database when no path is given. The same
#: file name power-loop 0.2.0 used, so existing installations keep their sessions.
DEFAULT_DB_PATH = "./power_loop_sessions.db"

#: Default limit on how deep subagents may nest (a root session has depth 0).
MAX_SPAWN_DEPTH = 3


class SessionKind(str, Enum):
    ROOT = "root"
    SUBAGENT = "subagent"


class SessionStatus(str, Enum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class SubagentLifecycle(str, Enum):
    """What closing the parent does to a subagent's session."""

    #: Deleted with its parent (and meant to be closed as soon as the subagent returns).
    EPHEMERAL = "ephemeral"
    #: Kept while the parent lives; deleted when the parent is closed.
    LINKED = "linked"
    #: Survives its parent; closing the parent only unlinks it.
    DETACHED = "detached"


class MessageState(str, Enum):
    ACTIVE = "active"
    COMPACTED_OUT = "compacted_out"


@dataclass
class SessionRow:
    session_id: str
    created_at: int
    updated_at: int
    system_prompt: str | None
    model: str | None
    config: dict[str, Any]
    status: SessionStatus
    kind: SessionKind
    parent_session_id: str | None
    spawn_tool_call_id: str | None
    spawn_depth: int
    lifecycle: SubagentLifecycle
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class MessageRow:
    session_id: str
    seq: int
    role: str
    name: str | None
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    round_index: int | None
    state: MessageState
    meta: dict[str, Any]
    created_at: int


@dataclass
class SessionStateRow:
    session_id: str
    next_seq: int
    round_index: int
    last_compact_seq: int
    pending: dict[str, Any] | None


@dataclass
class CompactionRow:
    session_id: str
    compact_seq: int
    note_seq: int
    from_seq: int
    to_seq: int
    before_tokens: int | None
    after_tokens: int | None
    round_index: int | None
    created_at: int


@dataclass(frozen=True)
class Lineage:
    """Where a session came from. Both fields are ``None`` for a session that is not a fork."""

    session_id: str
    #: The session it was forked from (which may since have been deleted).
    forked_from: str | None
    #: The last seq of the source's history the fork copied.
    forked_at_seq: int | None
