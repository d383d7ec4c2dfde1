"""A model-based test: random sequences of every public operation, on both facades, checked
against a small in-memory model of the semantics (seq allocation, compaction and logical order,
close cascade rules, pending, round index).

``POWER_STORE_MODEL_EXAMPLES`` sets how many sequences hypothesis tries per facade (default 25).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from power_store import (
    MAX_SPAWN_DEPTH,
    AsyncSessionStore,
    InvalidArgument,
    InvalidCompactionRange,
    SessionExists,
    SessionNotFound,
    SessionStore,
    SpawnDepthExceeded,
)

MISSING = "sess_missing"
LIFECYCLES = ["ephemeral", "linked", "detached"]
json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5)
json_dict = st.dictionaries(st.text(max_size=4), json_leaf | st.lists(json_leaf, max_size=3),
                            max_size=3)  # fmt: skip
text = st.text(max_size=12)


@dataclass
class Msg:
    seq: int
    role: str
    content: str | None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    round_index: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    active: bool = True
    position: int = 0


@dataclass
class Sess:
    parent: str | None
    depth: int
    kind: str
    lifecycle: str
    system_prompt: str | None
    metadata: dict[str, Any]
    status: str = "active"
    next_seq: int = 1
    round_index: int = 0
    last_compact_seq: int = 0
    pending: dict[str, Any] | None = None
    messages: dict[int, Msg] = field(default_factory=dict)
    compactions: list[tuple[int, int, int, int]] = field(default_factory=list)


class StoreMachine(RuleBasedStateMachine):
    facade = "async"

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="power_store_model_")
        path = os.path.join(self.dir, "model.db")
        self.loop: asyncio.AbstractEventLoop | None = None
        if self.facade == "async":
            self.loop = asyncio.new_event_loop()
            self.store: Any = self.loop.run_until_complete(_open(path))
        else:
            self.store = SessionStore.open(path)
        self.model: dict[str, Sess] = {}
        self.counter = 0

    def teardown(self) -> None:
        try:
            for sid in list(self.model):
                self._check(sid)
            self._call("close")
        finally:
            if self.loop is not None:
                self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # ── plumbing ──────────────────────────────────────────────────────────

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.store, method)
        if self.loop is not None:
            return self.loop.run_until_complete(fn(*args, **kwargs))
        return fn(*args, **kwargs)

    def _expect(self, error: type[BaseException] | None, method: str, *args: Any,
                **kwargs: Any) -> Any:  # fmt: skip
        raised: InvalidArgument | None = None
        result = None
        try:
            result = self._call(method, *args, **kwargs)
        except InvalidArgument as exc:
            raised = exc
        got = None if raised is None else type(raised)
        assert got is error, f"{method} gave {raised or result!r}, the model expects {error}"
        return result

    def _pick(self, data: st.DataObject, *, missing: bool = True) -> str:
        ids = sorted(self.model) + ([MISSING] if missing else [])
        return data.draw(st.sampled_from(ids))

    def _check(self, sid: str) -> None:
        m = self.model.get(sid)
        row = self._call("get_session", sid)
        state = self._call("get_state", sid)
        if m is None:
            assert (row, state) == (None, None)
            assert self._call("load_all_messages", sid) == []
            assert self._call("list_compactions", sid) == []
            return
        assert (row.parent_session_id, row.spawn_depth, row.kind.value, row.lifecycle.value,
                row.system_prompt, row.metadata, row.status.value) == (
            m.parent, m.depth, m.kind, m.lifecycle, m.system_prompt, m.metadata, m.status,
        )  # fmt: skip
        assert (state.next_seq, state.round_index, state.last_compact_seq, state.pending) == (
            m.next_seq, m.round_index, m.last_compact_seq, m.pending,
        )  # fmt: skip
        every = self._call("load_all_messages", sid)
        by_seq = sorted(m.messages.values(), key=lambda x: x.seq)
        assert [_view(r) for r in every] == [_mview(x) for x in by_seq]
        active = sorted((x for x in m.messages.values() if x.active),
                        key=lambda x: (x.position, x.seq))  # fmt: skip
        assert [r.seq for r in self._call("load_active_messages", sid)] == [x.seq for x in active]
        assert [(c.compact_seq, c.note_seq, c.from_seq, c.to_seq)
                for c in self._call("list_compactions", sid)] == m.compactions  # fmt: skip
        children = {s for s, x in self.model.items() if x.parent == sid}
        assert {r.session_id for r in self._call("list_children", sid)} == children
        if m.messages:
            seq = max(m.messages)
            assert _view(self._call("get_message", sid, seq)) == _mview(m.messages[seq])

    # ── sessions ──────────────────────────────────────────────────────────

    @rule(data=st.data(), lifecycle=st.sampled_from(LIFECYCLES), prompt=st.none() | text,
          metadata=json_dict, id_choice=st.sampled_from(["auto", "new", "existing"]),
          kind=st.sampled_from(["root", "subagent"]))  # fmt: skip
    def create_session(self, data: st.DataObject, lifecycle: str, prompt: str | None,
                       metadata: dict[str, Any], id_choice: str, kind: str) -> None:  # fmt: skip
        parent = data.draw(st.none() | st.sampled_from([*sorted(self.model), MISSING]))
        kwargs: dict[str, Any] = dict(system_prompt=prompt, metadata=metadata,
                                      lifecycle=lifecycle, kind=kind)  # fmt: skip
        if parent is not None:
            kwargs["parent_session_id"] = parent
        custom = None
        if id_choice == "new":
            self.counter += 1
            custom = f"custom-{self.counter}"
        elif id_choice == "existing" and self.model:
            custom = self._pick(data, missing=False)
        if custom is not None:
            kwargs["session_id"] = custom
        error: type[BaseException] | None = None
        depth = 0
        if parent is not None:
            if parent not in self.model:
                error = SessionNotFound
            else:
                depth = self.model[parent].depth + 1
                if depth > MAX_SPAWN_DEPTH:
                    error = SpawnDepthExceeded
                kind = "subagent"
        if error is None and custom in self.model:
            error = SessionExists
        sid = self._expect(error, "create_session", **kwargs)
        if error is None:
            assert sid not in self.model
            self.model[sid] = Sess(parent, depth, kind, lifecycle, prompt, metadata)
            self._check(sid)
            if parent is not None:
                self._check(parent)

    @rule(data=st.data())
    def archive_session(self, data: st.DataObject) -> None:
        sid = self._pick(data)
        self._expect(None if sid in self.model else SessionNotFound, "archive_session", sid)
        if sid in self.model:
            self.model[sid].status = "archived"
        self._check(sid)

    @rule(data=st.data(), prompt=st.none() | text)
    def update_session_prompt(self, data: st.DataObject, prompt: str | None) -> None:
        sid = self._pick(data)
        self._expect(None if sid in self.model else SessionNotFound, "update_session_prompt",
                     sid, prompt)  # fmt: skip
        if sid in self.model:
            self.model[sid].system_prompt = prompt
        self._check(sid)

    @rule(data=st.data(), cascade=st.booleans())
    def close_session(self, data: st.DataObject, cascade: bool) -> None:
        sid = self._pick(data)
        doomed: set[str] = set()
        if sid in self.model:
            doomed.add(sid)
            grew = cascade
            while grew:
                more = {s for s, x in self.model.items() if x.parent in doomed
                        and x.lifecycle != "detached"} - doomed  # fmt: skip
                doomed |= more
                grew = bool(more)
        assert self._expect(None, "close_session", sid, cascade=cascade) == len(doomed)
        survivors = {s for s, x in self.model.items() if x.parent in doomed} - doomed
        for s in doomed:
            del self.model[s]
        for s in survivors:
            self.model[s].parent = None
            self._check(s)
        for s in doomed:
            self._check(s)

    # ── messages and compaction ───────────────────────────────────────────

    @rule(data=st.data(), role=st.sampled_from(["user", "assistant", "tool", "x"]),
          content=st.none() | text, meta=st.none() | json_dict,
          round_index=st.none() | st.integers(0, 50), with_calls=st.booleans())  # fmt: skip
    def append_message(self, data: st.DataObject, role: str, content: str | None,
                       meta: dict[str, Any] | None, round_index: int | None,
                       with_calls: bool) -> None:  # fmt: skip
        sid = self._pick(data)
        calls = [{"id": f"c{self.counter}", "n": [1, 2]}] if with_calls else None
        seq = self._expect(None if sid in self.model else SessionNotFound, "append_message", sid,
                           role=role, content=content, meta=meta, round_index=round_index,
                           tool_calls=calls, name="n" if with_calls else None,
                           tool_call_id="t" if with_calls else None)  # fmt: skip
        if sid in self.model:
            m = self.model[sid]
            assert seq == m.next_seq
            m.messages[seq] = Msg(seq, role, content, "n" if with_calls else None, calls,
                                  "t" if with_calls else None, round_index, meta or {},
                                  position=seq)  # fmt: skip
            m.next_seq += 1
        self._check(sid)

    @rule(data=st.data(), round_index=st.none() | st.integers(0, 9),
          note_meta=st.none() | json_dict, before=st.none() | st.integers(0, 999))  # fmt: skip
    def record_compaction(
        self,
        data: st.DataObject,
        round_index: int | None,
        note_meta: dict[str, Any] | None,
        before: int | None,
    ) -> None:
        sid = self._pick(data)
        top = self.model[sid].next_seq + 1 if sid in self.model else 4
        first = data.draw(st.integers(-1, top))
        last = data.draw(st.integers(-1, top))
        m = self.model.get(sid)
        in_range = (
            [x for x in m.messages.values() if first <= x.seq <= last and x.active] if m else []
        )
        error: type[BaseException] | None = None
        if first < 1 or last < 1:
            error = InvalidArgument
        elif first > last:
            error = InvalidCompactionRange
        elif m is None:
            error = SessionNotFound
        elif last >= m.next_seq or not in_range:
            error = InvalidCompactionRange
        result = self._expect(error, "record_compaction", sid, from_seq=first, to_seq=last,
                              note_content=f"note {first}-{last}", before_tokens=before,
                              after_tokens=1, round_index=round_index,
                              note_meta=note_meta)  # fmt: skip
        if error is None:
            assert m is not None
            note_seq = m.next_seq
            m.next_seq += 1
            m.last_compact_seq += 1
            assert result == (m.last_compact_seq, note_seq)
            for x in in_range:
                x.active = False
            meta = dict(note_meta or {})
            meta.update(compacted_at_round=round_index, from_seq=first, to_seq=last,
                        original_tokens=before, summary_tokens=1)  # fmt: skip
            m.messages[note_seq] = Msg(note_seq, "system", f"note {first}-{last}", "compact_note",
                                       None, None, round_index, meta,
                                       position=min(x.position for x in in_range))  # fmt: skip
            m.compactions.append((m.last_compact_seq, note_seq, first, last))
        self._check(sid)

    # ── state and usage ───────────────────────────────────────────────────

    @rule(data=st.data(), round_index=st.integers(0, 100))
    def set_round_index(self, data: st.DataObject, round_index: int) -> None:
        sid = self._pick(data)
        self._expect(None if sid in self.model else SessionNotFound, "set_round_index", sid,
                     round_index)  # fmt: skip
        if sid in self.model:
            self.model[sid].round_index = round_index
        self._check(sid)

    @rule(data=st.data(), pending=st.none() | json_dict)
    def set_pending(self, data: st.DataObject, pending: dict[str, Any] | None) -> None:
        sid = self._pick(data)
        self._expect(None if sid in self.model else SessionNotFound, "set_pending", sid, pending)
        if sid in self.model:
            self.model[sid].pending = pending or None
        self._check(sid)

    @rule(data=st.data(), round_index=st.integers(0, 5))
    def record_usage(self, data: st.DataObject, round_index: int) -> None:
        # Usage rows have no read method; the model checks the error and that nothing else moved.
        sid = self._pick(data)
        self._expect(None if sid in self.model else SessionNotFound, "record_usage", sid,
                     round_index=round_index, prompt_tokens=1, completion_tokens=2,
                     total_tokens=3)  # fmt: skip
        self._check(sid)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def check_any(self, data: st.DataObject) -> None:
        self._check(self._pick(data, missing=False))


async def _open(path: str) -> AsyncSessionStore:
    return await AsyncSessionStore.open(path)


def _view(r: Any) -> tuple[Any, ...]:
    return (r.seq, r.role, r.content, r.name, r.tool_calls, r.tool_call_id, r.round_index,
            r.meta, r.state.value == "active")  # fmt: skip


def _mview(x: Msg) -> tuple[Any, ...]:
    return (x.seq, x.role, x.content, x.name, x.tool_calls, x.tool_call_id, x.round_index,
            x.meta, x.active)  # fmt: skip


_settings = settings(
    max_examples=int(os.environ.get("POWER_STORE_MODEL_EXAMPLES", "25")),
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class AsyncStoreMachine(StoreMachine):
    facade = "async"


class SyncStoreMachine(StoreMachine):
    facade = "sync"


TestAsyncStore = AsyncStoreMachine.TestCase
TestAsyncStore.settings = _settings
TestSyncStore = SyncStoreMachine.TestCase
TestSyncStore.settings = _settings
