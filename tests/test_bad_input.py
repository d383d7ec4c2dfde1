"""Bad input across the whole API: each gets a typed error and leaves the database untouched.

Every case runs against a file database on both facades; a dump of every table (plus
``user_version``) is taken before and after the call and must be identical.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from conftest import SyncAsAsync
from dbdump import dump

from power_store import (
    AsyncSessionStore,
    InvalidArgument,
    InvalidCompactionRange,
    SessionExists,
    SessionNotFound,
    SessionStore,
    SpawnDepthExceeded,
    StoreClosed,
)

pytestmark = pytest.mark.asyncio

NAN, INF = float("nan"), float("inf")
SURROGATE = "bad \ud800 text"


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


def _cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def _compact(s: Any, sid: str = "root", **overrides: Any) -> Awaitable[Any]:
    kwargs: dict[str, Any] = dict(
        from_seq=2, to_seq=3, note_content="n", before_tokens=1, after_tokens=1, round_index=0
    )
    kwargs.update(overrides)
    return s.record_compaction(sid, **kwargs)


def _usage(s: Any, sid: str = "root", **overrides: Any) -> Awaitable[Any]:
    kwargs: dict[str, Any] = dict(
        round_index=1, prompt_tokens=1, completion_tokens=1, total_tokens=2
    )
    kwargs.update(overrides)
    return s.record_usage(sid, **kwargs)


Case = tuple[str, Callable[[Any], Awaitable[Any]], type[BaseException]]

CASES: list[Case] = [
    # ── create_session ──
    ("create: duplicate custom id", lambda s: s.create_session(session_id="root"), SessionExists),
    ("create: empty session_id", lambda s: s.create_session(session_id=""), InvalidArgument),
    ("create: int session_id", lambda s: s.create_session(session_id=7), InvalidArgument),
    ("create: surrogate session_id", lambda s: s.create_session(session_id="\udfff"),
     InvalidArgument),
    ("create: unknown parent", lambda s: s.create_session(parent_session_id="nope"),
     SessionNotFound),
    ("create: empty parent id", lambda s: s.create_session(parent_session_id=""),
     InvalidArgument),
    ("create: spawn depth exceeded", lambda s: s.create_session(parent_session_id="d3"),
     SpawnDepthExceeded),
    ("create: unknown kind", lambda s: s.create_session(kind="bogus"), InvalidArgument),
    ("create: kind of wrong type", lambda s: s.create_session(kind=1), InvalidArgument),
    ("create: unhashable kind", lambda s: s.create_session(kind=[]), InvalidArgument),
    ("create: unknown lifecycle", lambda s: s.create_session(lifecycle="forever"),
     InvalidArgument),
    ("create: config NaN", lambda s: s.create_session(config={"t": NAN}), InvalidArgument),
    ("create: config object()", lambda s: s.create_session(config={"o": object()}),
     InvalidArgument),
    ("create: config not a dict", lambda s: s.create_session(config="{}"), InvalidArgument),
    ("create: config tuple value", lambda s: s.create_session(config={"t": (1, 2)}),
     InvalidArgument),
    ("create: metadata int key", lambda s: s.create_session(metadata={1: "a"}), InvalidArgument),
    ("create: metadata -inf", lambda s: s.create_session(metadata={"x": [-INF]}),
     InvalidArgument),
    ("create: metadata set", lambda s: s.create_session(metadata={"x": {1, 2}}), InvalidArgument),
    ("create: metadata bytes", lambda s: s.create_session(metadata={"x": b"raw"}),
     InvalidArgument),
    ("create: metadata surrogate key", lambda s: s.create_session(metadata={SURROGATE: 1}),
     InvalidArgument),
    ("create: metadata nested too deep", lambda s: s.create_session(metadata=_deep(100_000)),
     InvalidArgument),
    ("create: metadata cyclic", lambda s: s.create_session(metadata=_cyclic()), InvalidArgument),
    ("create: system_prompt int", lambda s: s.create_session(system_prompt=5), InvalidArgument),
    ("create: model bytes", lambda s: s.create_session(model=b"gpt"), InvalidArgument),
    ("create: spawn_tool_call_id surrogate",
     lambda s: s.create_session(spawn_tool_call_id=SURROGATE), InvalidArgument),
    # ── sessions ──
    ("archive: unknown id", lambda s: s.archive_session("nope"), SessionNotFound),
    ("archive: None id", lambda s: s.archive_session(None), InvalidArgument),
    ("update prompt: unknown id", lambda s: s.update_session_prompt("nope", "x"),
     SessionNotFound),
    ("update prompt: prompt int", lambda s: s.update_session_prompt("root", 3), InvalidArgument),
    ("close_session: cascade not bool", lambda s: s.close_session("root", cascade="yes"),
     InvalidArgument),
    ("close_session: empty id", lambda s: s.close_session(""), InvalidArgument),
    # ── append_message ──
    ("append: unknown session", lambda s: s.append_message("nope", role="user"),
     SessionNotFound),
    ("append: empty role", lambda s: s.append_message("root", role=""), InvalidArgument),
    ("append: None role", lambda s: s.append_message("root", role=None), InvalidArgument),
    ("append: int role", lambda s: s.append_message("root", role=1), InvalidArgument),
    ("append: content int", lambda s: s.append_message("root", role="user", content=1),
     InvalidArgument),
    ("append: content surrogate",
     lambda s: s.append_message("root", role="user", content=SURROGATE), InvalidArgument),
    ("append: tool_calls str", lambda s: s.append_message("root", role="a", tool_calls="[]"),
     InvalidArgument),
    ("append: tool_calls of ints", lambda s: s.append_message("root", role="a", tool_calls=[1]),
     InvalidArgument),
    ("append: tool_calls NaN",
     lambda s: s.append_message("root", role="a", tool_calls=[{"x": NAN}]), InvalidArgument),
    ("append: tool_calls object()",
     lambda s: s.append_message("root", role="a", tool_calls=[{"x": object()}]),
     InvalidArgument),
    ("append: meta inf", lambda s: s.append_message("root", role="a", meta={"x": INF}),
     InvalidArgument),
    ("append: meta list", lambda s: s.append_message("root", role="a", meta=[1]),
     InvalidArgument),
    ("append: round_index -1", lambda s: s.append_message("root", role="a", round_index=-1),
     InvalidArgument),
    ("append: round_index str", lambda s: s.append_message("root", role="a", round_index="1"),
     InvalidArgument),
    ("append: round_index bool", lambda s: s.append_message("root", role="a", round_index=True),
     InvalidArgument),
    ("append: round_index 2**64",
     lambda s: s.append_message("root", role="a", round_index=2**64), InvalidArgument),
    ("append: name int", lambda s: s.append_message("root", role="a", name=1), InvalidArgument),
    ("append: tool_call_id object()",
     lambda s: s.append_message("root", role="a", tool_call_id=object()), InvalidArgument),
    ("append: unknown keyword", lambda s: s.append_message("root", role="a", colour="red"),
     TypeError),
    # ── record_compaction ──
    ("compact: from > to", lambda s: _compact(s, from_seq=3, to_seq=2), InvalidCompactionRange),
    ("compact: beyond last seq", lambda s: _compact(s, to_seq=99), InvalidCompactionRange),
    ("compact: negative from", lambda s: _compact(s, from_seq=-1), InvalidArgument),
    ("compact: zero from", lambda s: _compact(s, from_seq=0), InvalidArgument),
    ("compact: already compacted", lambda s: _compact(s, from_seq=1, to_seq=1),
     InvalidCompactionRange),
    ("compact: unknown session", lambda s: _compact(s, "nope"), SessionNotFound),
    ("compact: float from", lambda s: _compact(s, from_seq=1.5), InvalidArgument),
    ("compact: note_content None", lambda s: _compact(s, note_content=None), InvalidArgument),
    ("compact: before_tokens -5", lambda s: _compact(s, before_tokens=-5), InvalidArgument),
    ("compact: note_meta NaN", lambda s: _compact(s, note_meta={"x": NAN}), InvalidArgument),
    # ── state ──
    ("set_round_index: unknown session", lambda s: s.set_round_index("nope", 1),
     SessionNotFound),
    ("set_round_index: -1", lambda s: s.set_round_index("root", -1), InvalidArgument),
    ("set_round_index: None", lambda s: s.set_round_index("root", None), InvalidArgument),
    ("set_pending: unknown session", lambda s: s.set_pending("nope", {"a": 1}), SessionNotFound),
    ("set_pending: NaN", lambda s: s.set_pending("root", {"a": NAN}), InvalidArgument),
    ("set_pending: str", lambda s: s.set_pending("root", "pending"), InvalidArgument),
    ("set_pending: object()", lambda s: s.set_pending("root", {"a": [object()]}),
     InvalidArgument),
    # ── usage ──
    ("usage: unknown session", lambda s: _usage(s, "nope"), SessionNotFound),
    ("usage: prompt_tokens str", lambda s: _usage(s, prompt_tokens="10"), InvalidArgument),
    ("usage: round_index -3", lambda s: _usage(s, round_index=-3), InvalidArgument),
    ("usage: model int", lambda s: _usage(s, model=1), InvalidArgument),
    # ── reads ──
    ("get_session: None", lambda s: s.get_session(None), InvalidArgument),
    ("get_session: surrogate", lambda s: s.get_session(SURROGATE), InvalidArgument),
    ("get_message: seq -1", lambda s: s.get_message("root", -1), InvalidArgument),
    ("get_message: seq 2**63", lambda s: s.get_message("root", 2**63), InvalidArgument),
    ("load_active_messages: int", lambda s: s.load_active_messages(5), InvalidArgument),
    ("list_children: empty", lambda s: s.list_children(""), InvalidArgument),
]  # fmt: skip


async def _populate(store: Any) -> None:
    await store.create_session(session_id="root", metadata={"k": "v"})
    for i in range(3):
        await store.append_message("root", role="user", content=f"m{i}")
    await store.record_compaction("root", from_seq=1, to_seq=1, note_content="n",
                                  before_tokens=1, after_tokens=1, round_index=0)  # fmt: skip
    await store.set_pending("root", {"tool_calls": [{"id": "c1"}]})
    await store.record_usage("root", round_index=0, prompt_tokens=1, completion_tokens=1,
                             total_tokens=2)  # fmt: skip
    parent = "root"
    for depth in (1, 2, 3):
        parent = await store.create_session(session_id=f"d{depth}", parent_session_id=parent)


@pytest_asyncio.fixture(params=["async", "sync"])
async def populated(request: pytest.FixtureRequest, file_path: str) -> AsyncIterator[Any]:
    if request.param == "async":
        async with AsyncSessionStore.open(file_path) as s:
            await _populate(s)
            yield s
    else:
        sync = SessionStore.open(file_path)
        try:
            wrapped = SyncAsAsync(sync)
            await _populate(wrapped)
            yield wrapped
        finally:
            sync.close()


async def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "call", "error"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_gets_a_typed_error_and_changes_nothing(
    populated: Any, name: str, call: Callable[[Any], Awaitable[Any]], error: type[BaseException]
) -> None:
    before = dump(populated.path)
    with pytest.raises(error) as raised:
        await call(populated)
    assert type(raised.value) is error or error is InvalidArgument
    assert dump(populated.path) == before
    # The store is still fully usable after the rejection.
    assert await populated.append_message("root", role="user", content="after") == 5


@pytest.mark.parametrize(
    "options",
    [{"synchronous": "off"}, {"readers": 0}, {"max_batch": "9"}, {"busy_timeout": -1},
     {"no_such_option": 1}],
)  # fmt: skip
async def test_bad_options_are_refused_before_any_io(tmp_path: Any, options: dict[str, Any]):
    path = tmp_path / "never.db"
    with pytest.raises(InvalidArgument):
        await AsyncSessionStore.open(path, **options)
    with pytest.raises(InvalidArgument):
        SessionStore.open(path, **options)
    assert not path.exists()


async def test_use_after_close_is_refused_and_changes_nothing(populated: Any) -> None:
    before = dump(populated.path)
    await populated.close()
    for call in (
        populated.append_message("root", role="user", content="late"),
        populated.create_session(),
        populated.set_pending("root", None),
        populated.get_session("root"),
        populated.load_active_messages("root"),
    ):
        with pytest.raises(StoreClosed):
            await call
    await populated.close()  # idempotent
    assert dump(populated.path) == before


async def test_close_during_writes_commits_what_was_queued_and_refuses_the_rest(
    file_path: str,
) -> None:
    store = await AsyncSessionStore.open(file_path)
    sid = await store.create_session()

    async def write(i: int) -> int:
        return int(await store.append_message(sid, role="user", content=f"w{i}"))

    early = [asyncio.create_task(write(i)) for i in range(300)]
    await asyncio.sleep(0)  # every early write is queued before close() starts
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0)
    late = [asyncio.create_task(write(1000 + i)) for i in range(50)]
    await closing
    results = await asyncio.gather(*early, *late, return_exceptions=True)
    assert all(isinstance(r, int) for r in results[:300]), results[:300]
    assert all(isinstance(r, StoreClosed) for r in results[300:])
    async with AsyncSessionStore.open(file_path) as again:
        stored = {m.content: m.seq for m in await again.load_all_messages(sid)}
    assert stored == {f"w{i}": seq for i, seq in enumerate(results[:300])}


async def test_ten_megabytes_of_content_round_trips(store: Any) -> None:
    sid = await store.create_session()
    big = ("agent memory ✓ " * 700_000)[: 10 * 1024 * 1024]
    seq = await store.append_message(sid, role="tool", content=big, meta={"blob": big[:1000]})
    message = await store.get_message(sid, seq)
    assert message.content == big
    assert message.meta == {"blob": big[:1000]}
