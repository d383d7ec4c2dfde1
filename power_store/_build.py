"""Checked construction of the message and state write ops, shared by the store's methods and
by :class:`Sink`, so both validate exactly alike (in the caller's coroutine)."""

from __future__ import annotations

import time
from typing import Any

from . import _validate as check
from ._errors import InvalidArgument
from ._ops import AppendMessage, AppendMessages, RecordUsage, SetPending, SetRoundIndex

_EMPTY_META = check.json_object(None, "meta")
_I64 = check.INT64_MAX

#: The keys a message dict of append_messages may carry.
MESSAGE_KEYS = frozenset(
    ("role", "content", "tool_calls", "tool_call_id", "name", "round_index", "meta")
)


def _message_params(
    role: Any,
    content: Any = None,
    tool_calls: Any = None,
    tool_call_id: Any = None,
    name: Any = None,
    round_index: Any = None,
    meta: Any = None,
) -> tuple[Any, ...]:
    # The typical field (None, or ASCII text) passes an inline test and skips its checker:
    # measured, the checkers' calls were a quarter of the event loop's work per append.
    # Anything else takes the checker, which accepts, converts or refuses it.
    if not (type(role) is str and role and role.isascii()):
        role = check.required_text(role, "role", non_empty=True)
    if not (content is None or (type(content) is str and content.isascii())):
        content = check.text(content, "content")
    if not (tool_call_id is None or (type(tool_call_id) is str and tool_call_id.isascii())):
        tool_call_id = check.text(tool_call_id, "tool_call_id")
    if not (name is None or (type(name) is str and name.isascii())):
        name = check.text(name, "name")
    if not (round_index is None or (type(round_index) is int and 0 <= round_index <= _I64)):
        round_index = check.optional_integer(round_index, "round_index")
    # In the INSERT's column order after session_id (see AppendMessage).
    return (
        role,
        name,
        content,
        None if tool_calls is None else check.tool_calls(tool_calls),
        tool_call_id,
        round_index,
        _EMPTY_META if meta is None else check.json_object(meta, "meta"),
    )


def append_message(
    session_id: Any,
    role: Any,
    content: Any,
    tool_calls: Any,
    tool_call_id: Any,
    name: Any,
    round_index: Any,
    meta: Any,
) -> AppendMessage:
    # Positional, in the public signature's order: the hottest call of all, and keyword
    # plumbing through two calls cost more than building the op.
    params = _message_params(role, content, tool_calls, tool_call_id, name, round_index, meta)
    return AppendMessage(check.session_id(session_id), *params)


def append_messages(session_id: Any, messages: Any) -> AppendMessages:
    if isinstance(messages, (str, bytes, dict)) or not hasattr(messages, "__iter__"):
        raise InvalidArgument("messages must be a list of message dicts")
    rows = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidArgument(f"messages[{index}] must be a dict, not {type(message).__name__}")
        unknown = set(message) - MESSAGE_KEYS
        if unknown:
            raise InvalidArgument(f"messages[{index}] has unknown keys {sorted(unknown)}")
        if "role" not in message:
            raise InvalidArgument(f"messages[{index}] has no role")
        rows.append(_message_params(**message))
    return AppendMessages(check.session_id(session_id), rows)


def set_round_index(session_id: Any, round_index: Any) -> SetRoundIndex:
    return SetRoundIndex(check.session_id(session_id), check.integer(round_index, "round_index"))


def set_pending(session_id: Any, pending: Any) -> SetPending:
    return SetPending(
        check.session_id(session_id), check.json_object(pending, "pending", empty_as=None)
    )


def record_usage(
    session_id: Any,
    round_index: Any,
    prompt_tokens: Any,
    completion_tokens: Any,
    total_tokens: Any,
    model: Any,
) -> RecordUsage:
    return RecordUsage(
        check.session_id(session_id),
        check.integer(round_index, "round_index"),
        check.optional_integer(prompt_tokens, "prompt_tokens"),
        check.optional_integer(completion_tokens, "completion_tokens"),
        check.optional_integer(total_tokens, "total_tokens"),
        check.text(model, "model"),
        time.time_ns() // 1_000_000,
    )
