"""The sync facade: threads, running loops, its own loop thread, exit without close, fork."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from power_store import AsyncSessionStore, FacadeMisuse, SessionStore, StoreClosed


def test_facade_has_every_public_method_of_the_async_store() -> None:
    def public(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}

    async_methods = public(AsyncSessionStore) - {"open"}
    sync_methods = public(SessionStore) - {"open"}
    assert async_methods == sync_methods
    for name in async_methods - {"close"}:
        assert inspect.signature(getattr(SessionStore, name)) == inspect.signature(
            getattr(AsyncSessionStore, name)
        ), name


def test_from_many_threads(file_path: str) -> None:
    with SessionStore.open(file_path) as store:
        sid = store.create_session()

        def worker(n: int) -> list[tuple[int, str]]:
            out = []
            for i in range(25):
                content = f"{n}-{i}"
                out.append((store.append_message(sid, role="user", content=content), content))
            return out

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = [pair for chunk in pool.map(worker, range(8)) for pair in chunk]
        assert sorted(seq for seq, _ in results) == list(range(1, 201))
        assert {m.seq: m.content for m in store.load_all_messages(sid)} == dict(results)


def test_from_inside_a_running_event_loop(file_path: str) -> None:
    store = SessionStore.open(file_path)

    async def helper_in_async_code() -> int:
        sid = store.create_session()  # a sync helper called from a coroutine
        return store.append_message(sid, role="user", content="from a loop")

    try:
        assert asyncio.run(helper_in_async_code()) == 1
    finally:
        store.close()


def test_from_its_own_loop_thread_raises_instead_of_deadlocking(file_path: str) -> None:
    with SessionStore.open(file_path) as store:
        # Code running on the store's private loop (here reached through its portal, as a
        # callback scheduled there would be) must get an error, not hang forever.
        with pytest.raises(FacadeMisuse):
            store._portal.call(store.create_session)
        assert store.create_session(session_id="still-works") == "still-works"


def test_use_after_close_and_double_close(file_path: str) -> None:
    store = SessionStore.open(file_path)
    store.close()
    store.close()
    with pytest.raises(StoreClosed):
        store.create_session()


def test_iterators_and_sinks_used_after_close_raise_store_closed(file_path: str) -> None:
    store = SessionStore.open(file_path)
    sid = store.create_session()
    store.append_message(sid, role="user", content="hi")
    export = store.export_session(sid)  # pages are pulled lazily, on next()
    sink = store.sink(sid)
    store.close()
    with pytest.raises(StoreClosed):
        next(export)
    with pytest.raises(StoreClosed):
        sink.flush()


def _run_script(code: str, timeout: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc, time.monotonic() - started


def test_script_that_never_closes_exits_and_keeps_its_writes(file_path: str) -> None:
    proc, _ = _run_script(
        f"""
        from power_store import SessionStore
        store = SessionStore.open({file_path!r})
        sid = store.create_session(session_id="left-open")
        store.append_message(sid, role="user", content="acknowledged")
        print("done", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    with SessionStore.open(file_path) as store:
        assert [m.content for m in store.load_all_messages("left-open")] == ["acknowledged"]


def test_async_script_that_never_closes_exits(file_path: str) -> None:
    proc, _ = _run_script(
        f"""
        import asyncio
        from power_store import AsyncSessionStore
        async def main():
            store = await AsyncSessionStore.open({file_path!r})
            await store.create_session(session_id="s")
        asyncio.run(main())
        print("done", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_a_clear_error(file_path: str) -> None:
    proc, _ = _run_script(
        f"""
        import os, sys
        from power_store import SessionStore, FacadeMisuse
        store = SessionStore.open({file_path!r})
        store.create_session(session_id="parent")
        pid = os.fork()
        if pid == 0:
            try:
                store.get_session("parent")
            except FacadeMisuse as exc:
                print("child:", type(exc).__name__, flush=True)
                os._exit(0)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        print("parent sees", store.get_session("parent").session_id, flush=True)
        store.close()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["child: FacadeMisuse", "parent sees parent"]


def test_context_manager_and_repr(file_path: str) -> None:
    with SessionStore.open(file_path) as store:
        assert "open" in repr(store)
        sid: Any = store.create_session()
        assert store.get_session(sid) is not None
    assert "closed" in repr(store)


def test_iterator_dropped_or_used_on_the_loop_thread_never_deadlocks(file_path: str) -> None:
    # The garbage collector finalizes an abandoned iterator on whatever thread it runs on, the
    # store's own loop thread included; nothing done there may wait for that thread.
    # (store._loop stands for code that happens to run there: a collection, a callback.)
    proc, _ = _run_script(
        f"""
        import gc, os, threading
        from power_store import FacadeMisuse, SessionStore

        store = SessionStore.open({file_path!r})
        sid = store.create_session()
        store.append_message(sid, role="user", content="hi")
        gc.disable()

        def abandon(name):
            iterator = getattr(store, name)(sid)
            next(iterator)
            cycle = [iterator]
            cycle.append(cycle)  # only the collector can free it now

        def on_loop(fn):
            done = threading.Event()
            result = []

            def run():
                try:
                    result.append(fn())
                except Exception as exc:
                    result.append(type(exc).__name__)
                done.set()

            store._loop.call_soon_threadsafe(run)
            if not done.wait(10):
                print("deadlocked", flush=True)
                os._exit(1)
            return result[0]

        abandon("watch")
        abandon("export_session")
        on_loop(gc.collect)
        print("collected", flush=True)
        watch = store.watch(sid)
        print("next on the loop thread:", on_loop(lambda: next(watch)), flush=True)
        print("still serving:", store.create_session(session_id="alive"), flush=True)
        print("same iterator elsewhere:", next(watch).content, flush=True)
        store.close()
        """,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "collected",
        "next on the loop thread: FacadeMisuse",
        "still serving: alive",
        "same iterator elsewhere: hi",
    ]
