"""AsyncSessionStore: the public async API over the writer and the reader pool."""

from __future__ import annotations

import asyncio
import enum
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import aiosqlite

from . import _connection, _queries, _schema
from . import _validate as check
from ._checkpointer import Checkpointer
from ._errors import InvalidArgument, InvalidCompactionRange, StoreClosed, StoreOpenError
from ._models import (
    DEFAULT_DB_PATH,
    MAX_SPAWN_DEPTH,
    CompactionRow,
    MessageRow,
    SessionKind,
    SessionRow,
    SessionStateRow,
    SubagentLifecycle,
)
from ._ops import (
    AppendMessage,
    ArchiveSession,
    CloseSession,
    CreateSession,
    RecordCompaction,
    RecordUsage,
    SetPending,
    SetRoundIndex,
    UpdateSessionPrompt,
    WriteOp,
)
from ._readers import ReaderPool
from ._writer import Writer

T = TypeVar("T")

MEMORY = ":memory:"
#: Committed writes between background checkpoint passes.
CHECKPOINT_EVERY_OPS = 500


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class StoreOptions:
    """Tuning knobs of :meth:`AsyncSessionStore.open`; every one has a sensible default."""

    readers: int = 2
    synchronous: Literal["normal", "full"] = "normal"
    max_spawn_depth: int = MAX_SPAWN_DEPTH
    busy_timeout: float = 5.0
    max_batch: int = 1000
    max_queue: int = 10_000

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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _resolve_path(path: str | os.PathLike[str]) -> str:
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
        # Agent transcripts are private: create the file readable by its owner only (SQLite
        # gives the -wal and -shm files the same mode).
        fd = os.open(resolved, os.O_CREAT | os.O_EXCL | os.O_WRONLY, stat.S_IRUSR | stat.S_IWUSR)
        os.close(fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreOpenError(str(resolved), exc.strerror or str(exc)) from exc
    return str(resolved)


class AsyncSessionStore:
    """The session store for asyncio code. Open it with :meth:`open`."""

    def __init__(
        self,
        path: str,
        options: StoreOptions,
        writer_conn: aiosqlite.Connection,
        writer: Writer,
        readers: ReaderPool,
        checkpointer: Checkpointer | None,
    ) -> None:
        # Use AsyncSessionStore.open(); this only wires parts that are already running.
        self.path = path
        self.options = options
        self._writer_conn = writer_conn
        self._writer = writer
        self._readers = readers
        self._checkpointer = checkpointer
        self._state = _State.OPEN
        self._closed: asyncio.Future[None] | None = None

    # ── lifecycle ─────────────────────────────────────────────────────────

    @classmethod
    def open(cls, path: str | os.PathLike[str] = DEFAULT_DB_PATH, **options: Any) -> _Opener:
        """Open (creating or migrating) the database at *path*.

        Use ``store = await AsyncSessionStore.open(path)`` or
        ``async with AsyncSessionStore.open(path) as store:``. Options: see :class:`StoreOptions`.

        :raises StoreOpenError: the path is a directory, not a SQLite file, or not writable.
        :raises SchemaTooNew: the file was written by a newer power_store.
        """
        try:
            opts = StoreOptions(**options)
        except TypeError as exc:
            raise InvalidArgument(str(exc)) from None
        return _Opener(cls, path, opts)

    @classmethod
    async def _open(cls, path: str | os.PathLike[str], options: StoreOptions) -> AsyncSessionStore:
        resolved = _resolve_path(path)
        busy_ms = int(options.busy_timeout * 1000)
        writer_conn = await _connection.connect(resolved)
        readers: list[aiosqlite.Connection] = []
        checkpointer: Checkpointer | None = None
        try:
            await _connection.run(
                writer_conn,
                _prepare,
                resolved,
                options.synchronous.upper(),
                busy_ms,
            )
            if resolved == MEMORY:
                # A private in-memory database has no WAL and no second connection can see
                # it; reads share the writer's connection (and its thread) instead.
                pool = ReaderPool([writer_conn], resolved, owned=False)
            else:
                uri = Path(resolved).as_uri() + "?mode=ro"
                for _ in range(options.readers):
                    conn = await _connection.connect(uri, uri=True)
                    readers.append(conn)
                    await _connection.run(conn, _schema.configure_reader, busy_ms)
                pool = ReaderPool(readers, resolved, owned=True)
                checkpoint_conn = await _connection.connect(resolved)
                checkpointer = Checkpointer(checkpoint_conn, every_ops=CHECKPOINT_EVERY_OPS)
                await _connection.run(checkpoint_conn, _schema.configure_reader, busy_ms)
        except BaseException as exc:
            if checkpointer is not None:
                await checkpointer.close()
            for conn in [*readers, writer_conn]:
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreOpenError(resolved, str(exc)) from exc
            raise
        writer = Writer(
            writer_conn,
            resolved,
            max_batch=options.max_batch,
            max_queue=options.max_queue,
            max_spawn_depth=options.max_spawn_depth,
            checkpointer=checkpointer,
        )
        writer.start()
        if checkpointer is not None:
            checkpointer.start()
        return cls(resolved, options, writer_conn, writer, pool, checkpointer)

    async def close(self) -> None:
        """Let queued writes commit, wait for running reads, then close every connection.

        Idempotent; concurrent calls all wait for the same close.
        """
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            self._state = _State.CLOSING
            try:
                await self._writer.close()
                if self._checkpointer is not None:
                    await self._checkpointer.close()
                await self._readers.close()
                await self._writer_conn.close()
            finally:
                self._state = _State.CLOSED
                self._closed.set_result(None)
        await asyncio.shield(self._closed)

    @property
    def closed(self) -> bool:
        return self._state is not _State.OPEN

    async def __aenter__(self) -> AsyncSessionStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncSessionStore {self.path!r} {self._state.value}>"

    # Plain functions returning the coroutine to await: one coroutine frame less per call.
    def _write(self, op: WriteOp) -> Coroutine[Any, Any, Any]:
        if self._state is not _State.OPEN:
            raise StoreClosed(self.path, self._state.value)
        return self._writer.submit(op)

    def _read(self, fn: Callable[..., T], *args: Any) -> Coroutine[Any, Any, T]:
        if self._state is not _State.OPEN:
            raise StoreClosed(self.path, self._state.value)
        return self._readers.run(fn, *args)

    # ── sessions ──────────────────────────────────────────────────────────

    async def create_session(
        self,
        *,
        system_prompt: str | None = None,
        model: str | None = None,
        config: dict[str, Any] | None = None,
        parent_session_id: str | None = None,
        spawn_tool_call_id: str | None = None,
        kind: SessionKind = SessionKind.ROOT,
        lifecycle: SubagentLifecycle = SubagentLifecycle.EPHEMERAL,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> str:
        """Create a session and its state row; return its id (``sess_`` + 24 hex by default).

        With *parent_session_id* the session is a subagent one level below its parent.

        :raises SessionNotFound: the parent does not exist.
        :raises SpawnDepthExceeded: the parent is already at the maximum spawn depth.
        :raises SessionExists: *session_id* is taken.
        """
        if session_id is None:
            session_id = "sess_" + secrets.token_hex(12)
        op = CreateSession(
            session_id=check.session_id(session_id),
            system_prompt=check.text(system_prompt, "system_prompt"),
            model=check.text(model, "model"),
            config_json=check.json_object(config, "config"),
            parent_session_id=(
                None if parent_session_id is None
                else check.session_id(parent_session_id, "parent_session_id")
            ),
            spawn_tool_call_id=check.text(spawn_tool_call_id, "spawn_tool_call_id"),
            kind=check.enum_value(SessionKind, kind, "kind"),
            lifecycle=check.enum_value(SubagentLifecycle, lifecycle, "lifecycle"),
            metadata_json=check.json_object(metadata, "metadata"),
        )  # fmt: skip
        result: str = await self._write(op)
        return result

    async def get_session(self, session_id: str) -> SessionRow | None:
        return await self._read(_queries.get_session, check.session_id(session_id))

    async def list_children(self, parent_session_id: str) -> list[SessionRow]:
        """Direct children of a session, oldest first."""
        return await self._read(
            _queries.list_children, check.session_id(parent_session_id, "parent_session_id")
        )

    async def archive_session(self, session_id: str) -> None:
        """Mark a session archived (it keeps all its data). :raises SessionNotFound:"""
        await self._write(ArchiveSession(check.session_id(session_id)))

    async def close_session(self, session_id: str, *, cascade: bool = True) -> int:
        """Delete a session's rows in every table; return how many sessions were removed.

        With *cascade* (the default) every descendant reached through ephemeral or linked
        children goes too; detached children survive as roots. Without it only this session is
        removed and its children become roots. An unknown id removes nothing and returns 0.
        """
        if not isinstance(cascade, bool):
            raise InvalidArgument(f"cascade must be a bool, got {cascade!r}")
        result: int = await self._write(CloseSession(check.session_id(session_id), cascade))
        return result

    async def update_session_prompt(self, session_id: str, system_prompt: str | None) -> None:
        """Replace a session's system prompt. :raises SessionNotFound:"""
        await self._write(
            UpdateSessionPrompt(
                check.session_id(session_id), check.text(system_prompt, "system_prompt")
            )
        )

    # ── messages ──────────────────────────────────────────────────────────

    async def append_message(
        self,
        session_id: str,
        *,
        role: str,
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
        round_index: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Append one message and return its ``seq`` (1, 2, 3 … per session).

        :raises SessionNotFound: unknown session.
        """
        op = AppendMessage(
            check.session_id(session_id),
            check.required_text(role, "role", non_empty=True),
            check.text(name, "name"),
            check.text(content, "content"),
            check.tool_calls(tool_calls),
            check.text(tool_call_id, "tool_call_id"),
            check.optional_integer(round_index, "round_index"),
            check.json_object(meta, "meta"),
        )
        result: int = await self._write(op)
        return result

    async def load_active_messages(self, session_id: str) -> list[MessageRow]:
        """The active history in logical order: a compaction note stands where the first
        message it replaced stood."""
        return await self._read(_queries.load_active_messages, check.session_id(session_id))

    async def load_all_messages(self, session_id: str) -> list[MessageRow]:
        """Every message, compacted ones included, in ``seq`` (allocation) order."""
        return await self._read(_queries.load_all_messages, check.session_id(session_id))

    async def get_message(self, session_id: str, seq: int) -> MessageRow | None:
        return await self._read(
            _queries.get_message, check.session_id(session_id), check.integer(seq, "seq")
        )

    # ── compaction ────────────────────────────────────────────────────────

    async def record_compaction(
        self,
        session_id: str,
        *,
        from_seq: int,
        to_seq: int,
        note_content: str,
        before_tokens: int | None,
        after_tokens: int | None,
        round_index: int | None,
        note_meta: dict[str, Any] | None = None,
    ) -> tuple[int, int]:
        """Mark messages ``from_seq..to_seq`` compacted out and add a ``compact_note`` system
        message in their place; return ``(compact_seq, note_seq)``.

        :raises InvalidCompactionRange: the range is reversed, past the last seq, or holds no
            active message.
        """
        sid = check.session_id(session_id)
        first = check.integer(from_seq, "from_seq", minimum=1)
        last = check.integer(to_seq, "to_seq", minimum=1)
        if first > last:
            raise InvalidCompactionRange(sid, from_seq, to_seq, "from_seq is after to_seq")
        before = check.optional_integer(before_tokens, "before_tokens")
        after = check.optional_integer(after_tokens, "after_tokens")
        rnd = check.optional_integer(round_index, "round_index")
        meta = dict(check.json_dict(note_meta, "note_meta"))
        meta.update(
            compacted_at_round=rnd,
            from_seq=first,
            to_seq=last,
            original_tokens=before,
            summary_tokens=after,
        )
        op = RecordCompaction(
            sid,
            first,
            last,
            check.required_text(note_content, "note_content"),
            before,
            after,
            rnd,
            check.encode(meta),
        )
        result: tuple[int, int] = await self._write(op)
        return result

    async def list_compactions(self, session_id: str) -> list[CompactionRow]:
        return await self._read(_queries.list_compactions, check.session_id(session_id))

    # ── state ─────────────────────────────────────────────────────────────

    async def get_state(self, session_id: str) -> SessionStateRow | None:
        return await self._read(_queries.get_state, check.session_id(session_id))

    async def set_round_index(self, session_id: str, round_index: int) -> None:
        """:raises SessionNotFound:"""
        await self._write(
            SetRoundIndex(check.session_id(session_id), check.integer(round_index, "round_index"))
        )

    async def set_pending(self, session_id: str, pending: dict[str, Any] | None) -> None:
        """Record unresolved tool calls so a crashed agent can resume; ``None`` or ``{}``
        clears them. :raises SessionNotFound:"""
        await self._write(
            SetPending(
                check.session_id(session_id),
                check.json_object(pending, "pending", empty_as=None),
            )
        )

    # ── usage ─────────────────────────────────────────────────────────────

    async def record_usage(
        self,
        session_id: str,
        *,
        round_index: int,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        total_tokens: int | None,
        model: str | None = None,
    ) -> None:
        """Record (or replace) the token usage of one round. :raises SessionNotFound:"""
        await self._write(
            RecordUsage(
                check.session_id(session_id),
                check.integer(round_index, "round_index"),
                check.optional_integer(prompt_tokens, "prompt_tokens"),
                check.optional_integer(completion_tokens, "completion_tokens"),
                check.optional_integer(total_tokens, "total_tokens"),
                check.text(model, "model"),
                _now_ms(),
            )
        )


def _prepare(conn: sqlite3.Connection, path: str, synchronous: str, busy_ms: int) -> None:
    _schema.configure_writer(conn, synchronous=synchronous, busy_timeout_ms=busy_ms)
    _schema.migrate(conn, path)


class _Opener:
    """What :meth:`AsyncSessionStore.open` returns: await it, or use it with ``async with``."""

    def __init__(
        self, cls: type[AsyncSessionStore], path: str | os.PathLike[str], options: StoreOptions
    ) -> None:
        self._cls = cls
        self._path = path
        self._options = options
        self._store: AsyncSessionStore | None = None

    def __await__(self) -> Generator[Any, None, AsyncSessionStore]:
        return self._cls._open(self._path, self._options).__await__()

    async def __aenter__(self) -> AsyncSessionStore:
        self._store = await self
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._store is not None
        await self._store.close()
