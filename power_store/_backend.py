"""What a storage backend provides to :class:`AsyncSessionStore`, and how one is chosen.

The public layer (argument checks, ops, the writer's queue, watch, sinks, the sync facade)
knows no SQL. A backend owns its connections and speaks its dialect: it commits the writer's
batches (a :class:`Writer` subclass), answers the reads below, and tells watchers about
writes made elsewhere. Two exist: ``sqlite/`` (a file, or ``":memory:"``) and ``postgres/``
(a ``postgresql://`` DSN).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from ._errors import InvalidArgument
from ._listing import SessionFilter, SessionPage
from ._maintenance import CheckpointResult
from ._models import (
    CompactionRow,
    Lineage,
    MessageRow,
    SessionRow,
    SessionStateRow,
)
from ._options import StoreOptions
from ._usage import UsageTotals
from ._writer import Writer

if TYPE_CHECKING:
    from ._watch import WatchHub

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Backend(abc.ABC):
    """One open database. Every read runs whole on one connection and returns finished rows;
    a read of several statements sees one snapshot."""

    #: ``"sqlite"`` or ``"postgres"``.
    name: ClassVar[str]
    #: The file path, ``":memory:"``, or the DSN without its password: for messages and repr.
    location: str
    #: Commits the store's write ops; started by the backend's ``open``.
    writer: Writer

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop the writer (queued ops commit first), let running reads finish, disconnect."""

    @property
    @abc.abstractmethod
    def reader_waits(self) -> int:
        """Reads that found every read connection busy and waited for one."""

    # Reads. Plain methods returning awaitables, so a backend may hand out its pool's
    # coroutine directly (one frame less per read).
    @abc.abstractmethod
    def get_session(self, session_id: str) -> Awaitable[SessionRow | None]: ...
    @abc.abstractmethod
    def list_children(self, parent_session_id: str) -> Awaitable[list[SessionRow]]: ...
    @abc.abstractmethod
    def load_active_messages(self, session_id: str) -> Awaitable[list[MessageRow]]: ...
    @abc.abstractmethod
    def load_all_messages(self, session_id: str) -> Awaitable[list[MessageRow]]: ...
    @abc.abstractmethod
    def get_message(self, session_id: str, seq: int) -> Awaitable[MessageRow | None]: ...
    @abc.abstractmethod
    def list_compactions(self, session_id: str) -> Awaitable[list[CompactionRow]]: ...
    @abc.abstractmethod
    def get_state(self, session_id: str) -> Awaitable[SessionStateRow | None]: ...
    @abc.abstractmethod
    def get_lineage(self, session_id: str) -> Awaitable[Lineage | None]: ...

    @abc.abstractmethod
    def list_sessions(
        self,
        f: SessionFilter,
        order_by: str,
        descending: bool,
        after: tuple[int, str] | None,
        limit: int,
    ) -> Awaitable[SessionPage]: ...

    @abc.abstractmethod
    def count_sessions(self, f: SessionFilter) -> Awaitable[int]: ...

    @abc.abstractmethod
    def load_messages(
        self,
        session_id: str,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        tail: int | None,
        include_compacted: bool,
    ) -> Awaitable[list[MessageRow]]:
        """Drive :func:`power_store._paging.window` with this backend's queries."""

    @abc.abstractmethod
    def usage_totals(self, session_id: str, include_subagents: bool) -> Awaitable[UsageTotals]:
        """:raises SessionNotFound:"""

    @abc.abstractmethod
    def messages_after(
        self, session_id: str, after_seq: int, limit: int
    ) -> Awaitable[tuple[bool, list[MessageRow]]]:
        """Whether the session exists, and up to *limit* of its messages past *after_seq* in
        seq order, from one snapshot (what a watcher reads)."""

    @abc.abstractmethod
    def export_lines(self, session_id: str, include_subagents: bool) -> Awaitable[list[str]]:
        """Every line of an export (:mod:`power_store._export`), from one snapshot."""

    # Upkeep: each backend says what these mean for it (docs/postgres.md for PostgreSQL).
    @abc.abstractmethod
    async def checkpoint(self, mode: str) -> CheckpointResult: ...
    @abc.abstractmethod
    async def vacuum(self) -> None: ...
    @abc.abstractmethod
    async def backup(self, dest: str) -> None:
        """Write a consistent copy to *dest*, a new empty private file already created."""

    @abc.abstractmethod
    def change_feed(self, hub: WatchHub) -> Coroutine[Any, Any, None] | None:
        """A coroutine that wakes *hub*'s watchers when another connection (process, host)
        commits, and returns once the hub has no waiting watcher; ``None`` when no one else
        can write (a private in-memory database)."""


def is_postgres_target(target: str) -> bool:
    return target.startswith(_POSTGRES_SCHEMES)


async def open_backend(target: str | os.PathLike[str], options: StoreOptions) -> Backend:
    """Open the backend *target* names: a ``postgresql://`` (or ``postgres://``) DSN selects
    PostgreSQL; a path, ``":memory:"`` or ``sqlite:///path`` selects SQLite."""
    raw = os.fspath(target)
    if not isinstance(raw, str):
        raise InvalidArgument(f"the store must be a path or a DSN string, got {target!r}")
    if is_postgres_target(raw):
        try:
            from .postgres._backend import PostgresBackend
        except ImportError as exc:
            if exc.name != "asyncpg":
                raise
            raise ImportError(
                "a postgresql:// store needs asyncpg: pip install 'power_store[postgres]'"
            ) from exc
        options.check_for("postgres")
        return await PostgresBackend.open(raw, options)
    from .sqlite._backend import SqliteBackend

    if raw.startswith("sqlite:///"):
        raw = raw[len("sqlite:///") :] or ":memory:"
    options.check_for("sqlite")
    return await SqliteBackend.open(raw, options)
