"""The one place where sqlite3 errors become power_store errors."""

from __future__ import annotations

import sqlite3

from .._errors import DatabaseError, InvalidArgument, PowerStoreError, StorageFull

# SQLite's primary result codes (sqlite3 only names them from Python 3.11 on).
_BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _PROTOCOL, _NOTADB = (
    5,
    6,
    7,
    8,
    10,
    11,
    13,
    14,
    15,
    26,
)
# Errors about the database or the machine, not about one op: a batch that meets one fails as a
# whole rather than being replayed op by op.
_ENVIRONMENTAL_CODES = frozenset(
    (_BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _PROTOCOL, _NOTADB)
)
# Python 3.10's sqlite3 errors carry no code; their messages are SQLite's fixed texts.
_CODE_BY_MESSAGE = (
    ("database is locked", _BUSY),
    ("database table is locked", _LOCKED),
    ("disk is full", _FULL),
    ("disk I/O error", _IOERR),
    ("malformed", _CORRUPT),
    ("not a database", _NOTADB),
    ("readonly database", _READONLY),
    ("unable to open", _CANTOPEN),
    ("out of memory", _NOMEM),
)


def _primary_code(exc: sqlite3.Error) -> int | None:
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    text = str(exc)
    return next((code for fragment, code in _CODE_BY_MESSAGE if fragment in text), None)


def is_environmental(exc: BaseException) -> bool:
    """True when *exc* is about the database as a whole, not about one op's input."""
    return isinstance(exc, sqlite3.Error) and _primary_code(exc) in _ENVIRONMENTAL_CODES


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) and _primary_code(exc) in (_BUSY, _LOCKED)


def map_error(exc: BaseException) -> BaseException:
    """Translate a low-level error into the power_store error a caller should see."""
    if isinstance(exc, PowerStoreError):
        return exc
    if isinstance(exc, UnicodeEncodeError):
        return InvalidArgument(f"text is not valid unicode (lone surrogate?): {exc.reason}")
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None)
        cls = StorageFull if _primary_code(exc) == _FULL else DatabaseError
        mapped = cls(f"SQLite error: {exc}", name)
        mapped.__cause__ = exc
        return mapped
    return exc
