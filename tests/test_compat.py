"""Files written by power-loop 0.2.0 open, migrate in place and continue."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest
from reference_db import DETACHED, LINKED, PENDING, ROOT, write_reference_db

from power_store import AsyncSessionStore, SchemaTooNew, SessionStore, SubagentLifecycle

REFERENCE_FILE = Path(
    os.environ.get(
        "POWER_STORE_REFERENCE",
        Path(__file__).resolve().parents[2] / "shared/reference/power_loop_0_2_0_session_store.py",
    )
)


@pytest.mark.asyncio
async def test_reference_file_opens_migrates_and_continues(file_path: str) -> None:
    write_reference_db(file_path)
    async with AsyncSessionStore.open(file_path) as store:
        state = await store.get_state(ROOT)
        assert (state.next_seq, state.round_index, state.last_compact_seq, state.pending) == (
            8, 2, 1, PENDING,
        )  # fmt: skip
        # Logical order: the note stands where message 1 stood, not after message 6.
        assert [m.seq for m in await store.load_active_messages(ROOT)] == [7, 4, 5, 6]
        assert [m.seq for m in await store.load_all_messages(ROOT)] == list(range(1, 8))
        assert {c.session_id for c in await store.list_children(ROOT)} == {LINKED, DETACHED}
        row = await store.get_session(ROOT)
        assert (row.config, row.metadata, row.model) == ({"t": 1}, {"who": ROOT}, "gpt-x")

        assert await store.append_message(ROOT, role="user", content="continued") == 8
        assert await store.record_compaction(
            ROOT, from_seq=4, to_seq=5, note_content="s2", before_tokens=2,
            after_tokens=1, round_index=3,
        ) == (2, 9)  # fmt: skip
        assert [m.seq for m in await store.load_active_messages(ROOT)] == [7, 9, 6, 8]
        await store.set_pending(ROOT, None)
        await store.record_usage(ROOT, round_index=2, prompt_tokens=1, completion_tokens=1,
                                 total_tokens=2)  # fmt: skip
        assert await store.close_session(ROOT) == 2  # root and the linked child
        assert (await store.get_session(DETACHED)).parent_session_id is None
    with contextlib.closing(sqlite3.connect(file_path)) as db, db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1


@pytest.mark.asyncio
async def test_wedged_reference_session_is_repaired(file_path: str) -> None:
    """power-loop 0.2.0 could leave next_seq behind a stored message; migration lifts it."""
    write_reference_db(file_path)
    with contextlib.closing(sqlite3.connect(file_path)) as db, db:
        db.execute("UPDATE session_state SET next_seq = 3 WHERE session_id = ?", (ROOT,))
    async with AsyncSessionStore.open(file_path) as store:
        assert await store.append_message(ROOT, role="user", content="unwedged") == 8


@pytest.mark.asyncio
async def test_a_blob_another_program_stored_as_content_still_loads(file_path: str) -> None:
    # SQLite lets any program put a BLOB in a TEXT column; JSON cannot carry one, so history
    # loads fall back from their one-step JSON fetch to reading row by row.
    async with AsyncSessionStore.open(file_path) as store:
        sid = await store.create_session()
        await store.append_message(sid, role="user", content="text")
        await store.append_message(sid, role="user", content="to be a blob")
    with contextlib.closing(sqlite3.connect(file_path)) as db, db:
        db.execute("UPDATE messages SET content = ? WHERE seq = 2", (b"\x00\xff",))
    async with AsyncSessionStore.open(file_path) as store:
        loads = (
            store.load_active_messages(sid),
            store.load_all_messages(sid),
            store.load_messages(sid, tail=5),
        )
        for load in loads:
            assert [m.content for m in await load] == ["text", b"\x00\xff"]


@pytest.mark.asyncio
async def test_newer_schema_is_refused(file_path: str) -> None:
    with contextlib.closing(sqlite3.connect(file_path)) as db, db:
        db.execute("PRAGMA user_version = 999")
    with pytest.raises(SchemaTooNew) as err:
        await AsyncSessionStore.open(file_path)
    assert err.value.found == 999
    with contextlib.closing(sqlite3.connect(file_path)) as db, db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 999


def _load_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("power_loop_reference", REFERENCE_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not REFERENCE_FILE.exists(), reason="power-loop 0.2.0 reference not present")
def test_file_written_by_the_real_reference_store_continues(file_path: str) -> None:
    reference = _load_reference()
    ref = reference.SessionStore.open(file_path)
    root = ref.create_session(model="m", metadata={"a": 1})
    child = ref.create_session(parent_session_id=root, lifecycle=reference.SubagentLifecycle.LINKED)
    for i in range(6):
        ref.append_message(root, role="user", content=f"m{i + 1}")
    ref.record_compaction(root, from_seq=2, to_seq=4, note_content="sum", before_tokens=9,
                          after_tokens=1, round_index=0)  # fmt: skip
    ref.set_pending(root, {"tool_calls": ["x"]})
    ref.record_usage(root, round_index=0, prompt_tokens=1, completion_tokens=2, total_tokens=3)
    ref.close()

    with SessionStore.open(file_path) as store:
        assert [m.content for m in store.load_active_messages(root)] == [
            "m1", "sum", "m5", "m6",
        ]  # fmt: skip
        assert store.get_state(root).pending == {"tool_calls": ["x"]}
        assert store.append_message(root, role="user", content="m8") == 8
        assert store.list_children(root)[0].lifecycle is SubagentLifecycle.LINKED
        assert store.close_session(root) == 2
        assert store.get_session(child) is None
