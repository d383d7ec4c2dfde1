"""Reads of several statements that must agree with each other."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block's statements in one read transaction, so they all see one snapshot.

    Outside a transaction each statement would see the database as of its own start, and a
    commit landing between two of them would tear the result. The transaction ends before the
    block returns, so no snapshot outlives the read (a pinned snapshot starves checkpoints).
    """
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")
