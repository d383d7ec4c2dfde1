"""A property test of what append_message accepts: every mix of field values, typical and odd,
against a plain statement of the rules. An accepted message reads back exactly as given; a
refused one raises InvalidArgument and writes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from power_store import AsyncSessionStore, InvalidArgument


class Text(str):
    """A str subclass: accepted like any str."""


async def _assert_refused(store: AsyncSessionStore, sid: str, fields: dict[str, Any]) -> None:
    """append_message refuses *fields* with InvalidArgument and writes nothing."""
    with pytest.raises(InvalidArgument):
        await store.append_message(sid, **fields)
    assert await store.load_all_messages(sid) == []


INT64_MAX = 2**63 - 1
texts = (
    st.text(max_size=8)  # ASCII and not, lone surrogates included
    | st.sampled_from(["", "user", "tool", "é", "\ud800", "\udfff x"])
    | st.builds(Text, st.sampled_from(["a", "ü"]))
)
odd = st.sampled_from([0, 1, True, b"bytes", 1.5, ["x"]])
text_field = st.none() | texts | odd
round_field = (
    st.none()
    | st.integers(-3, 3)
    | st.sampled_from([INT64_MAX, INT64_MAX + 1, -(2**70), True, False, "1", 1.0])
)


def encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and encodable(value))


def valid(fields: dict[str, Any]) -> bool:
    role, rnd = fields["role"], fields["round_index"]
    return (
        isinstance(role, str)
        and role != ""
        and encodable(role)
        and all(valid_text(fields[k]) for k in ("content", "tool_call_id", "name"))
        and (rnd is None or (type(rnd) is int and 0 <= rnd <= INT64_MAX))
    )


@settings(max_examples=300, deadline=None)
@given(
    role=text_field,
    content=text_field,
    tool_call_id=text_field,
    name=text_field,
    round_index=round_field,
)
def test_append_message_accepts_exactly_the_valid_fields(**fields: Any) -> None:
    async def check() -> None:
        async with AsyncSessionStore.open(":memory:") as store:
            sid = await store.create_session()
            if valid(fields):
                seq = await store.append_message(sid, **fields)
                row = await store.get_message(sid, seq)
                assert row is not None
                assert (row.role, row.content, row.tool_call_id, row.name, row.round_index) == (
                    fields["role"],
                    fields["content"],
                    fields["tool_call_id"],
                    fields["name"],
                    fields["round_index"],
                )
            else:
                await _assert_refused(store, sid, fields)

    asyncio.run(check())


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_keys = texts | st.integers(-2, 2) | st.sampled_from([None, True, 1.5, ("t",)])
json_like = st.recursive(
    json_scalars | st.sampled_from([b"x", {1, 2}, (1, "a")]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(json_keys, inner, max_size=3)
    ),
    max_leaves=8,
)


def valid_json(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, list):
        return all(valid_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and encodable(k) and valid_json(v) for k, v in value.items())
    return False


@settings(max_examples=300, deadline=None)
@given(meta=st.dictionaries(json_keys, json_like, max_size=4))
def test_meta_is_stored_iff_it_reads_back_unchanged(meta: dict[Any, Any]) -> None:
    async def check() -> None:
        async with AsyncSessionStore.open(":memory:") as store:
            sid = await store.create_session()
            if valid_json(meta):
                seq = await store.append_message(sid, role="user", meta=meta)
                row = await store.get_message(sid, seq)
                assert row is not None
                assert row.meta == meta
            else:
                await _assert_refused(store, sid, {"role": "user", "meta": meta})

    asyncio.run(check())
