"""What :meth:`AsyncSessionStore.open` accepts: its tuning options, checked, and the path,
resolved to a file that exists with owner-only permissions (or ``":memory:"``)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import _validate as check
from ._errors import InvalidArgument, StoreOpenError
from ._models import MAX_SPAWN_DEPTH

MEMORY = ":memory:"


@dataclass(frozen=True)
class StoreOptions:
    """Tuning knobs of :meth:`AsyncSessionStore.open`; every one has a sensible default."""

    readers: int = 2
    synchronous: Literal["normal", "full"] = "normal"
    max_spawn_depth: int = MAX_SPAWN_DEPTH
    busy_timeout: float = 5.0
    max_batch: int = 1000
    max_queue: int = 10_000
    #: Seconds between ``PRAGMA data_version`` polls while someone watches a file store: how
    #: soon watch() notices writes made by other processes.
    watch_poll_interval: float = 0.1

    def __post_init__(self) -> None:
        if self.synchronous not in ("normal", "full"):
            raise InvalidArgument(
                f"synchronous must be 'normal' or 'full', got {self.synchronous!r}"
            )
        for name, minimum in (
            ("readers", 1),
            ("max_batch", 1),
            ("max_queue", 1),
            ("max_spawn_depth", 0),
        ):
            check.integer(getattr(self, name), name, minimum=minimum)
        if not isinstance(self.busy_timeout, (int, float)) or not 0 <= self.busy_timeout < 3600:
            raise InvalidArgument(
                f"busy_timeout must be seconds in [0, 3600), got {self.busy_timeout!r}"
            )
        interval = self.watch_poll_interval
        if not isinstance(interval, (int, float)) or not 0.001 <= interval <= 60:
            raise InvalidArgument(f"watch_poll_interval must be in [0.001, 60], got {interval!r}")


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
