"""Where a SQLite store lives: the path, resolved to a file that exists with owner-only
permissions (or ``":memory:"``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .._errors import InvalidArgument, StoreOpenError

MEMORY = ":memory:"


def resolve_path(path: str | os.PathLike[str]) -> str:
    raw = os.fspath(path)
    if not isinstance(raw, str) or not raw:
        raise InvalidArgument(f"path must be a non-empty str or PathLike, got {path!r}")
    if raw == MEMORY:
        return raw
    resolved = Path(raw).expanduser().absolute()
    if resolved.is_dir():
        raise StoreOpenError(str(resolved), "it is a directory")
    try:
        resolved.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # mkdir says FileExistsError when a parent is a file: not "the database exists".
        raise StoreOpenError(str(resolved), f"cannot create its directory: {exc}") from exc
    try:
        # Agent transcripts are private: create the file readable by its owner only (SQLite
        # gives the -wal and -shm files the same mode).
        fd = os.open(resolved, os.O_CREAT | os.O_EXCL | os.O_WRONLY, stat.S_IRUSR | stat.S_IWUSR)
        os.close(fd)
    except FileExistsError:
        # SQLite would open a read-only file read-only and fail later, at the first write, with
        # a vaguer message. Root passes os.access, so a file with no write bit at all counts as
        # read-only too: power_store never migrates or writes a file its owner locked.
        if not os.access(resolved, os.W_OK) or not resolved.stat().st_mode & 0o222:
            raise StoreOpenError(str(resolved), "the file is read-only") from None
    except OSError as exc:
        raise StoreOpenError(str(resolved), exc.strerror or str(exc)) from exc
    return str(resolved)
