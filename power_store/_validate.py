"""Argument checks and JSON encoding, run in the caller's coroutine before a write is queued.

Everything here runs off the writer's path: by the time an op reaches the writer its input is
known to be well-formed and already encoded, so the writer only meets errors that depend on the
database (unknown session, bad range) or on the machine (disk full).
"""

from __future__ import annotations

import json
import math
from enum import Enum
from typing import Any, TypeVar

from ._errors import InvalidArgument

E = TypeVar("E", bound=Enum)

# No check_circular: every value is walked by _check_json_value before it is encoded, and the
# walk already refuses a cycle (as too deep); the encoder's own bookkeeping cost ~2 µs a call.
_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)

#: SQLite stores 64-bit signed integers; a bigger Python int would fail at bind time, inside the
#: writer, as an OverflowError the caller cannot tell from a bug.
INT64_MAX = 2**63 - 1


def _check_unicode(value: str, where: str) -> None:
    # A lone surrogate ("\ud800") is a valid Python str that has no UTF-8 form: SQLite's bind
    # would raise UnicodeEncodeError on the writer or reader thread. Refuse it here instead.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument(
                f"{where}: text is not valid unicode ({exc.reason} at index {exc.start})"
            ) from None


def _check_json_value(value: Any, where: str) -> None:
    # json.dumps would silently turn {1: "a"} into {"1": "a"} and a tuple into a list; a value
    # that does not come back as it went in is rejected instead. Containers are tested first:
    # leaves rarely get here (see below).
    if isinstance(value, dict):
        _check_json_dict(value, where)
    elif isinstance(value, list):
        _check_json_list(value, where)
    elif isinstance(value, str):
        _check_unicode(value, where)
    elif value is None or isinstance(value, int):  # bool is an int
        pass
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{where}: {value!r} is not a finite number")
    else:
        raise InvalidArgument(f"{where}: {type(value).__name__} is not JSON-serialisable")


# In both walks below, plain leaves (None, a plain int, an ASCII str) are settled inline:
# a call per leaf was most of the walk's cost.


def _check_json_list(value: list[Any], where: str) -> None:
    for item in value:
        if not (item is None or type(item) is int or (type(item) is str and item.isascii())):
            _check_json_value(item, where)


def _check_json_dict(value: dict[Any, Any], where: str) -> None:
    for key, item in value.items():
        if not (type(key) is str and key.isascii()):
            if not isinstance(key, str):
                raise InvalidArgument(f"{where}: key {key!r} is not a string")
            _check_unicode(key, where)
        if not (item is None or type(item) is int or (type(item) is str and item.isascii())):
            _check_json_value(item, where)


def _check_json_tree(value: Any, where: str) -> None:
    try:
        _check_json_value(value, where)
    except RecursionError:
        # Nesting deep enough to exhaust the stack here would exhaust it in json too.
        raise InvalidArgument(f"{where}: nested too deeply, or contains itself") from None


def json_dict(value: Any, where: str) -> dict[str, Any]:
    """Check a JSON object argument (``None`` meaning empty) without encoding it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where} must be a dict, not {type(value).__name__}")
    _check_json_tree(value, where)
    return value


def json_object(value: Any, where: str, *, empty_as: str | None = "{}") -> str | None:
    """Encode a JSON object argument; ``None`` and ``{}`` become *empty_as*."""
    checked = json_dict(value, where)
    return _encoder.encode(checked) if checked else empty_as


def tool_calls(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(call, dict) for call in value):
        raise InvalidArgument("tool_calls must be a list of dicts")
    if not value:
        return None
    _check_json_tree(value, "tool_calls")
    return _encoder.encode(value)


def decode(text: str | None) -> Any:
    return None if not text else json.loads(text)


def text(value: Any, where: str) -> str | None:
    """An optional string."""
    if value is None:
        return value
    if isinstance(value, str):
        _check_unicode(value, where)
        return value
    raise InvalidArgument(f"{where} must be a string or None, not {type(value).__name__}")


def required_text(value: Any, where: str, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where} must be a string, not {type(value).__name__}")
    if non_empty and not value:
        raise InvalidArgument(f"{where} must not be empty")
    _check_unicode(value, where)
    return value


def session_id(value: Any, where: str = "session_id") -> str:
    if type(value) is str and value and value.isascii():
        return value  # the usual id, settled inline: this runs for every write
    return required_text(value, where, non_empty=True)


def integer(value: Any, where: str, *, minimum: int = 0) -> int:
    # bool is an int subclass; True as a token count is a bug in the caller, not a 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{where} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise InvalidArgument(f"{where} must be >= {minimum}, got {value}")
    if value > INT64_MAX:
        raise InvalidArgument(f"{where} must fit in 64 bits, got {value}")
    return value


def optional_integer(value: Any, where: str, *, minimum: int = 0) -> int | None:
    return None if value is None else integer(value, where, minimum=minimum)


def enum_value(enum: type[E], value: Any, where: str) -> E:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum)
        raise InvalidArgument(f"{where} must be one of {choices}, got {value!r}") from None


def encode(value: dict[str, Any]) -> str:
    """Encode a dict already checked by :func:`json_dict` (plus our own scalar fields)."""
    return _encoder.encode(value)
