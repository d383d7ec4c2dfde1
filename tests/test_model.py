"""A model-based test: random sequences of the public operations, on both facades, checked
against a small in-memory model of the semantics (seq allocation, compaction and logical order,
close cascade rules, pending, round index, forks, usage totals, pruning orphans). Maintenance
calls (checkpoint, vacuum, an export/import round trip) must leave the model's view unchanged.
``watch``, ``sink``, ``backup``, ``stats``, ``list_sessions`` paging and ``load_messages``
windows have tests of their own; here only their plainest forms are compared.

``POWER_STORE_MODEL_EXAMPLES`` sets how many sequences hypothesis tries per facade (default 25).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from power_store import (
    MAX_SPAWN_DEPTH,
    AsyncSessionStore,
    InvalidArgument,
    InvalidCompactionRange,
    InvalidForkPoint,
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
    usage: dict[int, tuple[int, int, int, str | None]] = field(default_factory=dict)
    lineage: tuple[str | None, int | None] = (None, None)


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
        # Draw from the model in creation order, never sorted: auto ids are random, and a
        # sorted order would make the same draws pick other sessions from run to run.
        # An unknown id one time in ten: enough to check every error path, while most steps
        # act on sessions that exist.
        if not self.model or (missing and data.draw(st.integers(0, 9)) == 0):
            return MISSING
        return data.draw(st.sampled_from(list(self.model)))

    def _check(self, sid: str) -> None:
        m = self.model.get(sid)
        row = self._call("get_session", sid)
        state = self._call("get_state", sid)
        if m is None:
            assert (row, state) == (None, None)
            assert self._call("get_lineage", sid) is None
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
        assert [r.seq for r in self._call("load_messages", sid)] == [x.seq for x in active]
        assert [_view(r) for r in self._call("load_messages", sid, include_compacted=True)] == [
            _mview(x) for x in by_seq
        ]
        lineage = self._call("get_lineage", sid)
        assert (lineage.forked_from, lineage.forked_at_seq) == m.lineage
        totals = self._call("usage_totals", sid)
        assert (totals.prompt_tokens, totals.completion_tokens, totals.total_tokens,
                totals.rounds) == _sum_usage([m])  # fmt: skip
        assert [(c.compact_seq, c.note_seq, c.from_seq, c.to_seq)
                for c in self._call("list_compactions", sid)] == m.compactions  # fmt: skip
        children = {s for s, x in self.model.items() if x.parent == sid}
        assert {r.session_id for r in self._call("list_children", sid)} == children
        if m.messages:
            seq = max(m.messages)
            assert _view(self._call("get_message", sid, seq)) == _mview(m.messages[seq])

    # ── sessions ──────────────────────────────────────────────────────────

    @initialize()
    def two_sessions_with_history(self) -> None:
        for i in range(2):
            sid = self._expect(None, "create_session", session_id=f"seed-{i}")
            self.model[sid] = Sess(None, 0, "root", "ephemeral", None, {})
            for j in range(1, 4):
                assert self._expect(None, "append_message", sid, role="user", content=str(j)) == j
                self.model[sid].messages[j] = Msg(j, "user", str(j), position=j)
            self.model[sid].next_seq = 4
            self._check(sid)

    @rule(data=st.data(), lifecycle=st.sampled_from(LIFECYCLES), prompt=st.none() | text,
          metadata=json_dict, id_choice=st.sampled_from(["auto", "new", "existing"]),
          kind=st.sampled_from(["root", "subagent"]))  # fmt: skip
    def create_session(self, data: st.DataObject, lifecycle: str, prompt: str | None,
                       metadata: dict[str, Any], id_choice: str, kind: str) -> None:  # fmt: skip
        parent = data.draw(st.none() | st.sampled_from([*list(self.model), MISSING]))
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
        before = set(self.model)
        removed = self._close_in_model(sid, cascade)
        assert self._expect(None, "close_session", sid, cascade=cascade) == removed
        for s in before:
            self._check(s)

    def _close_in_model(self, sid: str, cascade: bool) -> int:
        if sid not in self.model:
            return 0
        doomed = {sid}
        grew = cascade
        while grew:
            more = {s for s, x in self.model.items() if x.parent in doomed
                    and x.lifecycle != "detached"} - doomed  # fmt: skip
            doomed |= more
            grew = bool(more)
        for s, x in self.model.items():
            if x.parent in doomed and s not in doomed:
                x.parent = None
        for s in doomed:
            del self.model[s]
        return len(doomed)

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
        if data.draw(st.integers(0, 4)):  # mostly an ordered range, often a valid one
            first = data.draw(st.integers(1, top))
            last = data.draw(st.integers(first, top))
        else:
            first, last = data.draw(st.integers(-1, top)), data.draw(st.integers(-1, top))
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
        sid = self._pick(data)
        self._expect(None if sid in self.model else SessionNotFound, "record_usage", sid,
                     round_index=round_index, prompt_tokens=round_index, completion_tokens=2,
                     total_tokens=round_index + 2)  # fmt: skip
        if sid in self.model:  # an upsert per (session, round)
            self.model[sid].usage[round_index] = (round_index, 2, round_index + 2, None)
        self._check(sid)

    @rule(data=st.data(), count=st.integers(1, 3))
    def append_messages(self, data: st.DataObject, count: int) -> None:
        sid = self._pick(data)
        batch = [{"role": "user", "content": f"batch {self.counter}.{i}", "round_index": i}
                 for i in range(count)]  # fmt: skip
        self.counter += 1
        seqs = self._expect(None if sid in self.model else SessionNotFound, "append_messages",
                            sid, batch)  # fmt: skip
        if sid in self.model:
            m = self.model[sid]
            assert seqs == list(range(m.next_seq, m.next_seq + count))
            for seq, item in zip(seqs, batch, strict=True):
                m.messages[seq] = Msg(seq, "user", item["content"], round_index=item["round_index"],
                                      position=seq)  # fmt: skip
            m.next_seq += count
        self._check(sid)

    @rule(data=st.data(), with_meta=st.booleans(), point=st.sampled_from(["all", "seq", "bad"]))
    def fork_session(self, data: st.DataObject, with_meta: bool, point: str) -> None:
        source = self._pick(data)
        m = self.model.get(source)
        at_seq = None
        if point == "seq" and m is not None and m.messages:
            at_seq = data.draw(st.sampled_from(sorted(m.messages)))
        elif point == "bad":
            at_seq = data.draw(st.integers(1, 30))
        new_id = data.draw(st.sampled_from([None, "fork-new", *list(self.model)[:2]]))
        if new_id == "fork-new":
            self.counter += 1
            new_id = f"fork-{self.counter}"
        metadata = {"forked": True} if with_meta else None
        error: type[BaseException] | None = None
        if m is None:
            error = SessionNotFound
        elif at_seq is not None and (at_seq not in m.messages or not m.messages[at_seq].active):
            error = InvalidForkPoint
        elif new_id in self.model:
            error = SessionExists
        new = self._expect(error, "fork_session", source, at_seq=at_seq, new_session_id=new_id,
                           metadata=metadata)  # fmt: skip
        if error is None:
            assert m is not None
            active = [x for x in m.messages.values() if x.active]
            if at_seq is not None:
                bound = (m.messages[at_seq].position, at_seq)
                active = [x for x in active if (x.position, x.seq) <= bound]
            copied = {x.seq: replace(x) for x in active}
            f = Sess(None, 0, "root", "ephemeral", m.system_prompt,
                     metadata if metadata is not None else m.metadata)  # fmt: skip
            f.messages = copied
            f.compactions = [c for c in m.compactions if c[1] in copied]
            f.last_compact_seq = m.last_compact_seq
            if at_seq is None:
                f.next_seq, f.round_index, f.pending = m.next_seq, m.round_index, m.pending
                f.lineage = (source, m.next_seq - 1)
            else:
                f.next_seq = max([at_seq, *copied]) + 1
                f.round_index = max((x.round_index or 0 for x in copied.values()), default=0)
                f.lineage = (source, at_seq)
            self.model[new] = f
            self._check(new)
        self._check(source)

    @rule(data=st.data())
    def usage_totals_with_subagents(self, data: st.DataObject) -> None:
        sid = self._pick(data)
        if sid not in self.model:
            self._expect(SessionNotFound, "usage_totals", sid, include_subagents=True)
            return
        tree, frontier = {sid}, {sid}
        while frontier:  # every descendant, whatever its lifecycle
            frontier = {s for s, x in self.model.items() if x.parent in frontier} - tree
            tree |= frontier
        totals = self._expect(None, "usage_totals", sid, include_subagents=True)
        assert (totals.prompt_tokens, totals.completion_tokens, totals.total_tokens,
                totals.rounds) == _sum_usage([self.model[s] for s in tree])  # fmt: skip

    @rule(roots_only=st.booleans(), status=st.sampled_from([None, "active", "archived"]))
    def count_sessions(self, roots_only: bool, status: str | None) -> None:
        expected = sum(
            1 for x in self.model.values()
            if (not roots_only or x.parent is None) and status in (None, x.status)
        )  # fmt: skip
        assert self._call("count_sessions", roots_only=roots_only, status=status) == expected

    @rule()
    def prune_orphaned_subagents(self) -> None:
        # Ephemeral subagents without a living parent go, each as close_session would take it.
        orphans = [s for s, x in self.model.items() if x.kind == "subagent"
                   and x.lifecycle == "ephemeral" and x.parent not in self.model]  # fmt: skip
        removed = 0
        for sid in orphans:
            removed += self._close_in_model(sid, cascade=True)
        result = self._expect(None, "prune", orphaned_subagents=True)
        assert (result.sessions, result.messages) == (removed, 0)
        for sid in list(self.model):
            self._check(sid)

    @rule(data=st.data(), what=st.sampled_from(["checkpoint", "vacuum", "export/import"]))
    def maintenance_changes_nothing(self, data: st.DataObject, what: str) -> None:
        if what == "checkpoint":
            self._call("checkpoint", data.draw(st.sampled_from(["passive", "full", "truncate"])))
        elif what == "vacuum":
            self._call("vacuum")
        elif self.model:
            sid = self._pick(data, missing=False)
            lines = self._export(sid)
            assert self._call("import_session", lines, on_conflict="replace")[0] == sid
        for sid in list(self.model):
            self._check(sid)

    def _export(self, sid: str) -> list[str]:
        exported = self.store.export_session(sid, include_subagents=False)
        if self.loop is not None:
            return self.loop.run_until_complete(_collect(exported))
        return list(exported)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def check_any(self, data: st.DataObject) -> None:
        self._check(self._pick(data, missing=False))


async def _open(path: str) -> AsyncSessionStore:
    return await AsyncSessionStore.open(path)


async def _collect(lines: Any) -> list[str]:
    return [line async for line in lines]


def _sum_usage(sessions: list[Sess]) -> tuple[int, int, int, int]:
    rows = [u for x in sessions for u in x.usage.values()]
    return (sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows), len(rows))


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
