"""Hostile strings round-trip untouched, storage is JSON text only, new files are owner-only."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

import power_store
from power_store import AsyncSessionStore, InvalidArgument, SessionStore

pytestmark = pytest.mark.asyncio

HOSTILE = [
    "'; DROP TABLE messages; --",
    '"); DELETE FROM sessions; --',
    "Robert'); DROP TABLE sessions;--",
    "nul\x00inside\x00",
    "\x00",
    "quote ' double \" backslash \\ percent % underscore _",
    "?1 :name @p $x",
    "🧠" * 10_000 + "漢字" * 10_000 + "\u202e\u200b\ufeff",
    "\U0010ffff\ue000",
    "line\nbreak\r\ntab\t",
    " ",
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_strings_round_trip_untouched(store: Any, hostile: str) -> None:
    if store.backend == "postgres" and "\x00" in hostile:
        pytest.skip("PostgreSQL text cannot hold NUL: test_nul_text_is_refused_on_postgres")
    parent = await store.create_session(session_id=hostile + "parent")
    sid = await store.create_session(
        session_id=hostile,
        parent_session_id=parent,
        system_prompt=hostile,
        model=hostile,
        spawn_tool_call_id=hostile,
        config={hostile: hostile},
        metadata={hostile: [hostile, {hostile: hostile}]},
        lifecycle="linked",
    )
    assert sid == hostile
    seq = await store.append_message(
        sid,
        role=hostile,
        name=hostile,
        content=hostile,
        tool_call_id=hostile,
        tool_calls=[{hostile: hostile}],
        meta={hostile: hostile},
    )
    await store.set_pending(sid, {hostile: [hostile]})
    await store.record_usage(sid, round_index=0, prompt_tokens=1, completion_tokens=1,
                             total_tokens=2, model=hostile)  # fmt: skip
    await store.append_message(sid, role="user", content="second")
    await store.record_compaction(sid, from_seq=1, to_seq=1, note_content=hostile,
                                  before_tokens=1, after_tokens=1, round_index=0,
                                  note_meta={hostile: hostile})  # fmt: skip

    row = await store.get_session(sid)
    assert (row.session_id, row.system_prompt, row.model, row.spawn_tool_call_id) == (
        hostile, hostile, hostile, hostile,
    )  # fmt: skip
    assert row.parent_session_id == parent
    assert row.config == {hostile: hostile}
    assert row.metadata == {hostile: [hostile, {hostile: hostile}]}
    message = await store.get_message(sid, seq)
    assert (message.role, message.name, message.content, message.tool_call_id) == (
        hostile, hostile, hostile, hostile,
    )  # fmt: skip
    assert message.tool_calls == [{hostile: hostile}]
    assert message.meta == {hostile: hostile}
    assert (await store.get_state(sid)).pending == {hostile: [hostile]}
    note, second = await store.load_active_messages(sid)
    assert note.content == hostile
    assert note.meta[hostile] == hostile
    assert second.content == "second"
    every = await store.load_all_messages(sid)
    assert [m.seq for m in every] == [1, 2, 3]
    assert every[0] == message
    assert [c.session_id for c in await store.list_children(parent)] == [hostile]
    # Every table is still there and nothing else was touched.
    assert await store.close_session(parent) == 2
    assert await store.get_session(sid) is None
    other = await store.create_session()
    assert await store.append_message(other, role="user") == 1


async def test_nul_text_is_refused_on_postgres(store: Any) -> None:
    """PostgreSQL's text type cannot hold U+0000: such text is refused, typed, nothing written
    (the rest of the batch commits); inside JSON values it is escaped and round-trips."""
    if store.backend != "postgres":
        pytest.skip("SQLite stores NUL in text (test_hostile_strings_round_trip_untouched)")
    sid = await store.create_session()
    nul = "a\x00b"
    writes = [
        store.create_session(session_id=nul),
        store.create_session(system_prompt=nul),
        store.append_message(sid, role="user", content=nul),
        store.append_message(sid, role="user", name=nul),
        store.append_messages(sid, [{"role": "user", "content": "ok"}, {"role": nul}]),
        store.update_session_prompt(sid, nul),
        store.record_usage(sid, round_index=0, prompt_tokens=1, completion_tokens=1,
                           total_tokens=2, model=nul),
    ]  # fmt: skip
    fine = store.append_message(sid, role="user", content="fine", meta={nul: [nul]})
    results = await asyncio.gather(*writes, fine, return_exceptions=True)
    assert all(isinstance(r, InvalidArgument) for r in results[:-1]), results
    assert results[-1] == 1
    (message,) = await store.load_all_messages(sid)
    assert (message.content, message.meta) == ("fine", {nul: [nul]})
    assert (await store.get_session(sid)).system_prompt is None
    assert await store.count_sessions() == 1
    assert await store.usage_totals(sid) is not None
    assert (await store.usage_totals(sid)).rounds == 0


LONE_SURROGATES = ["\ud800", "x\udfffy", "ok" * 100 + "\udc80"]


@pytest.mark.parametrize("bad", LONE_SURROGATES, ids=range(len(LONE_SURROGATES)))
@pytest.mark.parametrize(
    "where",
    ["session_id", "system_prompt", "role", "name", "content", "metadata key", "metadata value",
     "tool_calls", "pending"],
)  # fmt: skip
async def test_lone_surrogates_are_invalid_arguments(store: Any, bad: str, where: str) -> None:
    sid = await store.create_session()
    calls = {
        "session_id": lambda: store.create_session(session_id=bad),
        "system_prompt": lambda: store.create_session(system_prompt=bad),
        "role": lambda: store.append_message(sid, role=bad),
        "name": lambda: store.append_message(sid, role="tool", name=bad),
        "content": lambda: store.append_message(sid, role="user", content=bad),
        "metadata key": lambda: store.create_session(metadata={bad: 1}),
        "metadata value": lambda: store.create_session(metadata={"k": [bad]}),
        "tool_calls": lambda: store.append_message(sid, role="a", tool_calls=[{"id": bad}]),
        "pending": lambda: store.set_pending(sid, {"calls": [{"id": bad}]}),
    }
    with pytest.raises(InvalidArgument, match="not valid unicode"):
        await calls[where]()
    assert await store.load_all_messages(sid) == []
    assert (await store.get_state(sid)).pending is None


async def test_structured_columns_hold_json_text_only(file_path: str) -> None:
    async with AsyncSessionStore.open(file_path) as store:
        sid = await store.create_session(config={"a": 1}, metadata={"b": [1.5, None, True]})
        await store.append_message(sid, role="a", tool_calls=[{"id": "c"}], meta={"m": "x"})
        await store.set_pending(sid, {"p": {"q": []}})
    with contextlib.closing(sqlite3.connect(file_path)) as db:
        values = [
            *db.execute("SELECT config_json, metadata_json FROM sessions").fetchone(),
            *db.execute("SELECT tool_calls_json, meta_json FROM messages").fetchone(),
            *db.execute("SELECT pending_json FROM session_state").fetchone(),
        ]
        types = db.execute(
            "SELECT typeof(config_json), typeof(metadata_json) FROM sessions "
            "UNION ALL SELECT typeof(tool_calls_json), typeof(meta_json) FROM messages"
        ).fetchall()
    assert all(isinstance(v, str) for v in values)
    assert [json.loads(v) for v in values] == [
        {"a": 1}, {"b": [1.5, None, True]}, [{"id": "c"}], {"m": "x"}, {"p": {"q": []}},
    ]  # fmt: skip
    assert set(types) == {("text", "text")}


async def test_the_package_never_unpickles_or_evaluates() -> None:
    forbidden = {"pickle", "marshal", "shelve", "dill", "eval", "exec"}
    package = Path(power_store.__file__).parent
    found = []
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Name):
                names = [node.id]
            found += [(source.name, n) for n in names if n.split(".")[0] in forbidden]
    assert found == []


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
async def test_a_new_database_and_its_wal_and_shm_are_owner_only(
    tmp_path: Path, umask: int
) -> None:
    path = str(tmp_path / "nested" / "new.db")
    old = os.umask(umask)
    try:
        store = SessionStore.open(path)
        try:
            sid = store.create_session()
            store.append_message(sid, role="user", content="secret")
            modes = {suffix: _mode(path + suffix) for suffix in ("", "-wal", "-shm")}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


async def test_an_existing_file_keeps_the_mode_its_owner_chose(file_path: str) -> None:
    os.close(os.open(file_path, os.O_CREAT | os.O_WRONLY, 0o640))
    os.chmod(file_path, 0o640)
    async with AsyncSessionStore.open(file_path) as store:
        await store.create_session()
    assert _mode(file_path) == 0o640
