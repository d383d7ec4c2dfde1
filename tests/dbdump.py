"""Read a whole database file with plain sqlite3: every table, every row, in a stable order."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any


def dump(path: str) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        # Table names come from sqlite_master, not from a caller.
        snapshot = {
            t: sorted(db.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
        }
        snapshot["user_version"] = [db.execute("PRAGMA user_version").fetchone()]
    return snapshot
