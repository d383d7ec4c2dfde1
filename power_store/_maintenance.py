"""Retention and upkeep: prune, checkpoint, vacuum, and online backup."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ._batch import Batch
from ._errors import InvalidArgument
from ._models import MessageState, SessionKind, SessionStatus, SubagentLifecycle
from ._ops import CloseSession, WriteOp

CHECKPOINT_MODES = ("passive", "full", "restart", "truncate")


@dataclass(frozen=True)
class PruneResult:
    #: Sessions deleted, descendants removed with them included.
    sessions: int
    #: Compacted-out original messages dropped.
    messages: int


@dataclass(frozen=True)
class CheckpointResult:
    """SQLite's answer to ``PRAGMA wal_checkpoint`` (``-1`` pages on a database without WAL)."""

    #: True when another connection kept the checkpoint from completing.
    busy: bool
    #: Pages in the WAL file.
    log_pages: int
    #: Pages of the WAL written back into the database.
    checkpointed_pages: int


class Prune(WriteOp):
    """Delete what retention no longer needs, in one transaction."""

    __slots__ = ("archived_before", "compacted_before", "orphaned_subagents", "session_id")

    def __init__(
        self, archived_before: int | None, orphaned_subagents: bool, compacted_before: int | None
    ) -> None:
        # Prune writes no single session; "" is never a session id, so the batch's next_seq
        # prefetch finds nothing for it.
        self.session_id = ""
        self.archived_before = archived_before
        self.orphaned_subagents = orphaned_subagents
        self.compacted_before = compacted_before

    def apply(self, batch: Batch) -> PruneResult:
        conn = batch.conn
        batch.flush()
        doomed: list[str] = []
        if self.archived_before is not None:
            # Archiving touches updated_at, and an archived session is not written any more:
            # its updated_at is when it was archived (or last changed after that).
            doomed += [
                r[0]
                for r in conn.execute(
                    "SELECT session_id FROM sessions WHERE status = ? AND updated_at < ?",
                    (SessionStatus.ARCHIVED.value, self.archived_before),
                )
            ]
        if self.orphaned_subagents:
            # Ephemeral subagents are meant to die with their parent; one whose parent is gone
            # (or was unlinked) has nobody left to close it.
            doomed += [
                r[0]
                for r in conn.execute(
                    "SELECT s.session_id FROM sessions s WHERE s.kind = ? AND s.lifecycle = ? "
                    "AND (s.parent_session_id IS NULL OR NOT EXISTS ("
                    "  SELECT 1 FROM sessions p WHERE p.session_id = s.parent_session_id))",
                    (SessionKind.SUBAGENT.value, SubagentLifecycle.EPHEMERAL.value),
                )
            ]
        # Each goes the way close_session would take it: with its non-detached descendants.
        sessions = sum(CloseSession(sid, cascade=True).apply(batch) for sid in doomed)
        messages = 0
        if self.compacted_before is not None:
            # Compaction notes stay even when a later compaction swallowed them, and so do the
            # compactions rows: the audit of what was summarised, and when, survives.
            messages = conn.execute(
                "DELETE FROM messages WHERE state = ? AND created_at < ? "
                "AND NOT (role = 'system' AND name IS 'compact_note')",
                (MessageState.COMPACTED_OUT.value, self.compacted_before),
            ).rowcount
        return PruneResult(sessions, messages)


def checkpoint(conn: sqlite3.Connection, mode: str) -> CheckpointResult:
    # mode is one of CHECKPOINT_MODES, checked by the caller.
    busy, log, done = conn.execute(f"PRAGMA wal_checkpoint({mode.upper()})").fetchone()
    return CheckpointResult(bool(busy), log, done)


def vacuum(conn: sqlite3.Connection) -> None:
    conn.execute("VACUUM")


def create_backup_file(dest: str | os.PathLike[str]) -> str:
    """Create *dest* empty and private (0600), exclusively: an existing file is never
    overwritten. Return its absolute path."""
    target = Path(os.fspath(dest)).expanduser().absolute()
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise InvalidArgument(f"backup destination {str(target)!r} exists already") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot create {str(target)!r}: {exc.strerror}") from None
    return str(target)


def backup(conn: sqlite3.Connection, dest: str) -> None:
    """Copy the database behind *conn* (a reader) to the new file *dest*.

    One backup step over every page (``pages=-1``) reads inside a single read transaction:
    the copy is one consistent snapshot, and in WAL mode that snapshot never blocks the
    writer. A stepped backup would restart from scratch each time another connection commits,
    and under a steady write load might never finish.
    """
    target = sqlite3.connect(dest)
    try:
        conn.backup(target)
    finally:
        target.close()
