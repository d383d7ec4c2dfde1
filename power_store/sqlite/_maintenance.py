"""Upkeep on SQLite: checkpoint, vacuum and online backup."""

from __future__ import annotations

import sqlite3

from .._maintenance import CheckpointResult


def checkpoint(conn: sqlite3.Connection, mode: str) -> CheckpointResult:
    # mode is one of CHECKPOINT_MODES, checked by the caller.
    busy, log, done = conn.execute(f"PRAGMA wal_checkpoint({mode.upper()})").fetchone()
    return CheckpointResult(bool(busy), log, done)


def vacuum(conn: sqlite3.Connection) -> None:
    conn.execute("VACUUM")


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
