"""Retention and upkeep: what prune, checkpoint and backup return, and the backup file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._errors import InvalidArgument

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
