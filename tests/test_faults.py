"""Faults: a full database, I/O errors at commit, a dead read connection, unopenable paths.

Three faults have no public trigger, so these tests reach one level in, and only there:
``max_page_count`` is a per-connection setting, applied here to the store's writer connection;
a dead reader is made by closing a pool connection behind the pool's back; a bug in the batch
code is stood in for by making the writer's batch function raise. I/O errors come from
the operating system itself (``RLIMIT_FSIZE``), with no hook at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dbdump import dump

from power_store import (
    AsyncSessionStore,
    DatabaseError,
    SessionStore,
    StorageFull,
    StoreOpenError,
)
from power_store.sqlite import _connection

pytestmark = pytest.mark.asyncio


async def _on_writer(store: AsyncSessionStore, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    # The store's private hook: run fn on the writer connection's thread, between batches.
    return await store._backend.on_writer(fn)  # type: ignore[attr-defined]


def _set_max_pages(pages: int) -> Callable[[sqlite3.Connection], int]:
    def apply(conn: sqlite3.Connection) -> int:
        # PRAGMA values cannot be bound; pages is our own int.
        result: int = conn.execute(f"PRAGMA max_page_count = {pages:d}").fetchone()[0]
        return result

    return apply


async def _page_count(store: AsyncSessionStore) -> int:
    return int(await _on_writer(store, lambda c: c.execute("PRAGMA page_count").fetchone()[0]))


async def test_database_full_fails_whole_batches_typed_and_recovers(file_path: str) -> None:
    async with AsyncSessionStore.open(file_path) as store:
        sessions = [await store.create_session() for _ in range(3)]
        for sid in sessions:
            for i in range(5):
                await store.append_message(sid, role="user", content=f"before {i}")
        await _on_writer(store, _set_max_pages(await _page_count(store) + 8))

        blob = "x" * 20_000  # ~5 pages each: the limit is reached within a few writes
        ops: list[tuple[str, str, Any]] = []
        failures: list[BaseException] = []
        wave = 0
        while not failures:
            assert wave < 20, "the limit was never reached"
            batch = [(sessions[i % 3], f"{wave}.{i}:{blob}") for i in range(4)]
            results = await asyncio.gather(
                *(store.append_message(sid, role="tool", content=c) for sid, c in batch),
                return_exceptions=True,
            )
            ops += [(sid, c, r) for (sid, c), r in zip(batch, results, strict=True)]
            failures = [r for r in results if isinstance(r, BaseException)]
            wave += 1
        assert all(type(f) is StorageFull for f in failures), failures
        assert {f.sqlite_errorname for f in failures} <= {None, "SQLITE_FULL"}

        # A write that cannot fit changes nothing at all, alone or with others in its batch.
        huge = "y" * 200_000
        before = dump(file_path)
        with pytest.raises(StorageFull):
            await store.append_message(sessions[0], role="tool", content=huge)
        together = await asyncio.gather(
            store.record_compaction(sessions[1], from_seq=1, to_seq=5, note_content=huge,
                                    before_tokens=1, after_tokens=1, round_index=0),
            store.set_pending(sessions[1], {"p": 1}),
            store.append_message(sessions[2], role="user", content="small"),
            return_exceptions=True,
        )  # fmt: skip
        assert [type(r) for r in together] == [StorageFull] * 3
        assert dump(file_path) == before

        # Exactly the acknowledged writes are stored, at the seq each caller got back.
        for sid in sessions:
            stored = {m.seq: m.content for m in await store.load_all_messages(sid)}
            acked = {r: c for s, c, r in ops if s == sid and isinstance(r, int)}
            assert stored == {i + 1: f"before {i}" for i in range(5)} | acked
            assert (await store.get_state(sid)).next_seq == max(stored) + 1

        # Space is back: the same store goes on, seqs stay gapless.
        await _on_writer(store, _set_max_pages(1_073_741_823))
        for sid in sessions:
            next_seq = (await store.get_state(sid)).next_seq
            assert await store.append_message(sid, role="tool", content=blob) == next_seq
        assert await store.record_compaction(sessions[1], from_seq=1, to_seq=5,
                                             note_content="n", before_tokens=1, after_tokens=1,
                                             round_index=0) == (1, next_seq + 1)  # fmt: skip


@contextlib.contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """The OS refuses every write past *limit* bytes in any file of this process (EFBIG)."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills us
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
async def test_io_error_at_commit_is_typed_changes_nothing_and_recovers(store: Any) -> None:
    if store.path == ":memory:":
        pytest.skip("an in-memory database does no file I/O")
    if store.backend == "postgres":
        pytest.skip("RLIMIT_FSIZE fails this process's SQLite writes; a PostgreSQL server "
                    "writes its own files (its faults: tests/test_pg_faults.py)")  # fmt: skip
    sid = await store.create_session()
    for i in range(20):
        await store.append_message(sid, role="user", content=f"m{i}")
    before = dump(store.path)
    with _file_size_limit(4096):  # every WAL frame ends past 4 KiB: every commit fails
        results = await asyncio.gather(
            *(store.append_message(sid, role="user", content=f"lost {i}") for i in range(30)),
            store.record_compaction(sid, from_seq=1, to_seq=10, note_content="n",
                                    before_tokens=1, after_tokens=1, round_index=0),
            store.set_pending(sid, {"p": 1}),
            store.create_session(session_id="during the fault"),
            return_exceptions=True,
        )  # fmt: skip
        # Reads go on meanwhile.
        assert len(await store.load_all_messages(sid)) == 20
    assert all(isinstance(r, DatabaseError) for r in results), results
    assert {r.sqlite_errorname for r in results} <= {"SQLITE_IOERR_WRITE", "SQLITE_FULL", None}
    assert dump(store.path) == before
    assert await store.append_message(sid, role="user", content="after") == 21
    assert await store.record_compaction(sid, from_seq=1, to_seq=10, note_content="n",
                                         before_tokens=1, after_tokens=1,
                                         round_index=0) == (1, 22)  # fmt: skip
    assert await store.get_session("during the fault") is None


@pytest.mark.parametrize("how", ["aiosqlite connection closed", "sqlite3 connection closed"])
async def test_a_dead_read_connection_is_replaced(file_path: str, how: str) -> None:
    async with AsyncSessionStore.open(file_path, readers=2) as store:
        sid = await store.create_session()
        await store.append_message(sid, role="user", content="hello")
        pool = store._backend._readers  # type: ignore[attr-defined]
        for conn in list(pool._all):
            if how == "aiosqlite connection closed":
                await conn.close()
            else:
                await _connection.run(conn, lambda c: c.close())
        # Every read succeeds, including several at once, and the pool heals.
        loads = await asyncio.gather(*(store.load_active_messages(sid) for _ in range(10)))
        assert all([m.content for m in load] == ["hello"] for load in loads)
        assert pool.replaced == 2
        assert all(_connection.is_alive(conn) for conn in pool._all)
        await store.append_message(sid, role="user", content="again")
        assert len(await store.load_all_messages(sid)) == 2
        assert pool.replaced == 2


def _not_sqlite(path: Path) -> str:
    path.write_bytes(os.urandom(8192))
    return str(path)


def _text_file(path: Path) -> str:
    path.write_text("these are my notes, not a database\n" * 100)
    return str(path)


def _directory(path: Path) -> str:
    path.mkdir()
    return str(path)


def _read_only(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE mine (x)")
        db.commit()
    path.chmod(0o444)
    return str(path)


def _under_a_file(path: Path) -> str:
    path.write_text("a file")
    return str(path / "sessions.db")


def _truncated_sqlite(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
        db.commit()
    data = path.read_bytes()
    path.write_bytes(data[:100] + os.urandom(len(data) - 100))
    return str(path)


def _listing(directory: Path, path: str) -> tuple[list[str], bytes | None]:
    """The directory's entries, and the target's bytes if it is a file."""
    target = Path(path)
    content = target.read_bytes() if target.is_file() else None
    return sorted(p.name for p in directory.iterdir()), content


@pytest.mark.parametrize(
    "make",
    [_not_sqlite, _text_file, _directory, _read_only, _under_a_file, _truncated_sqlite],
    ids=lambda f: f.__name__.strip("_"),
)
async def test_unopenable_paths_get_a_clear_error_and_are_left_alone(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    path = make(tmp_path / "target")
    before = _listing(tmp_path, path)
    threads = threading.active_count()
    with pytest.raises(StoreOpenError) as err:
        await AsyncSessionStore.open(path)
    assert path in str(err.value) or str(Path(path).parent) in str(err.value)
    with pytest.raises(StoreOpenError):
        SessionStore.open(path)
    assert _listing(tmp_path, path) == before
    # No loop or sqlite thread left behind. A stopped thread may still be returning from its
    # last call; a leak would stay, so give it a generous while (this only bounds a hang).
    for _ in range(1000):
        if threading.active_count() <= threads:
            break
        await asyncio.sleep(0.01)
    assert threading.active_count() == threads


async def test_a_bug_in_the_batch_code_reaches_the_callers_instead_of_hanging_them(
    file_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from power_store.sqlite import _writer

    real = _writer.run_batch
    async with AsyncSessionStore.open(file_path) as store:
        sid = await store.create_session()

        def broken(*args: Any) -> Any:
            monkeypatch.setattr(_writer, "run_batch", real)  # one batch only
            raise RuntimeError("bug in the batch code")

        monkeypatch.setattr(_writer, "run_batch", broken)
        results = await asyncio.gather(
            *(store.append_message(sid, role="user", content=str(i)) for i in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, RuntimeError) for r in results), results
        # The writer survived: the next write commits.
        assert await store.append_message(sid, role="user", content="after") == 1
