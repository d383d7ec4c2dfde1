"""What :meth:`AsyncSessionStore.open` accepts: its tuning options, checked."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Literal

from . import _validate as check
from ._errors import InvalidArgument
from ._models import MAX_SPAWN_DEPTH

#: Options that mean something on one backend only; given for the other, they are refused.
_ONLY_ON = {
    "synchronous": "sqlite",
    "busy_timeout": "sqlite",
    "schema": "postgres",
    "connect_timeout": "postgres",
    "statement_cache_size": "postgres",
}
#: A PostgreSQL schema name power_store accepts: it is written into SQL text (quoted), so only
#: plain lower-case identifiers pass.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class StoreOptions:
    """Tuning knobs of :meth:`AsyncSessionStore.open`; every one has a sensible default.

    ``None`` means the backend's default; an option of the other backend must stay ``None``.
    """

    #: Read connections in the pool (both backends).
    readers: int = 2
    max_spawn_depth: int = MAX_SPAWN_DEPTH
    max_batch: int = 1000
    max_queue: int = 10_000
    #: Seconds between checks for writes made elsewhere while someone watches: SQLite polls
    #: ``PRAGMA data_version`` this often; PostgreSQL is woken by NOTIFY and polls only as a
    #: fallback, 20 times less often.
    watch_poll_interval: float = 0.1
    # ── SQLite only ──
    #: ``"normal"`` (default: durable across application crashes) or ``"full"`` (fsync per
    #: commit: durable across power loss too).
    synchronous: Literal["normal", "full"] | None = None
    #: Seconds a write waits for another process's write lock (default 5).
    busy_timeout: float | None = None
    # ── PostgreSQL only ──
    #: The PostgreSQL schema holding the store's tables (default ``"power_store"``); created
    #: if missing. Lower-case letters, digits and ``_``.
    schema: str | None = None
    #: Seconds to wait for a connection (default 10).
    connect_timeout: float | None = None
    #: asyncpg's prepared-statement cache per connection (default 100); 0 behind pgbouncer in
    #: transaction mode.
    statement_cache_size: int | None = None

    def __post_init__(self) -> None:
        if self.synchronous not in (None, "normal", "full"):
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
        for name in ("busy_timeout", "connect_timeout"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not 0 <= value < 3600
            ):
                raise InvalidArgument(f"{name} must be seconds in [0, 3600), got {value!r}")
        if self.statement_cache_size is not None:
            check.integer(self.statement_cache_size, "statement_cache_size")
        if self.schema is not None:
            check_schema(self.schema)
        interval = self.watch_poll_interval
        if not isinstance(interval, (int, float)) or not 0.001 <= interval <= 60:
            raise InvalidArgument(f"watch_poll_interval must be in [0.001, 60], got {interval!r}")

    def check_for(self, backend: str) -> None:
        """Refuse options that only the other backend understands."""
        wrong = [
            f.name
            for f in fields(self)
            if _ONLY_ON.get(f.name, backend) != backend and getattr(self, f.name) is not None
        ]
        if wrong:
            raise InvalidArgument(
                f"option {', '.join(wrong)} only applies to the {_ONLY_ON[wrong[0]]} backend, "
                f"not to {backend}"
            )


def check_schema(name: object) -> str:
    """A PostgreSQL schema name, checked against :data:`SCHEMA_NAME`."""
    if not isinstance(name, str) or not SCHEMA_NAME.fullmatch(name):
        raise InvalidArgument(
            f"schema must be a lower-case identifier ({SCHEMA_NAME.pattern}), got {name!r}"
        )
    return name
