"""The one place where asyncpg and PostgreSQL errors become power_store errors.

Three kinds of failure, handled differently by the batch:

* **retryable** — deadlock (``40P01``) or serialization failure (``40001``): the whole batch is
  rolled back and run again, a bounded number of times;
* **environmental** — the connection, the server or the schema itself failed (connection lost,
  out of disk or memory, shutdown, a missing table): the whole batch fails, there is no point in
  replaying it op by op;
* anything else is about one op's input (a NUL character PostgreSQL text refuses, a unique
  violation) and fails only that op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from .._errors import DatabaseError, InvalidArgument, PowerStoreError, SessionExists, StorageFull

if TYPE_CHECKING:
    from collections.abc import Sequence

RETRYABLE = frozenset(("40P01", "40001"))
UNIQUE_VIOLATION = "23505"
# Classes (the first two characters of a SQLSTATE) about the server, the connection or the
# schema rather than one op's values: 08 connection, 25 transaction state, 28 authorisation,
# 3D/3F missing database or schema, 42 missing table or column, 53 insufficient resources,
# 54 program limit, 55 object state (lock_timeout), 57 operator intervention (shutdown,
# statement_timeout), 58 system error, XX internal.
_ENVIRONMENTAL_CLASSES = frozenset(
    ("08", "25", "28", "3D", "3F", "42", "53", "54", "55", "57", "58", "XX")
)
_DISK_FULL = "53100"
# Raised by asyncpg when the socket is gone, or the connection is closed or broken.
_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.InterfaceError,
    OSError,  # includes ConnectionError, socket timeouts
)
# The server ends the session with one of these (pg_terminate_backend, shutdown, crash).
_SHUTDOWN_STATES = frozenset(("57P01", "57P02", "57P03"))


class ConnectionLost(DatabaseError):
    """The connection to PostgreSQL dropped while a batch ran.

    ``outcomes`` is ``None`` when it dropped before COMMIT was sent: nothing of the batch
    committed, and it may be run again on a new connection. When it dropped *during* COMMIT the
    outcome is unknown: ``outcomes`` holds what each op would return if the batch committed;
    ask :func:`power_store.postgres._appends.committed` after reconnecting.
    """

    def __init__(
        self, message: str, *, batch_id: str, outcomes: Sequence[tuple[Any, Any]] | None = None
    ) -> None:
        super().__init__(message, sqlstate="08006")
        self.batch_id = batch_id
        self.outcomes = None if outcomes is None else list(outcomes)


def sqlstate(exc: BaseException) -> str | None:
    state: str | None = (
        getattr(exc, "sqlstate", None) if isinstance(exc, asyncpg.PostgresError) else None
    )
    return state


def is_connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, (ConnectionLost, *_CONNECTION_ERRORS)) or (
        sqlstate(exc) in _SHUTDOWN_STATES
    )


def is_retryable(exc: BaseException) -> bool:
    return sqlstate(exc) in RETRYABLE


def is_environmental(exc: BaseException) -> bool:
    """True when *exc* is about the database as a whole, not about one op's input."""
    if is_connection_lost(exc):
        return True
    state = sqlstate(exc)
    return state is not None and state[:2] in _ENVIRONMENTAL_CLASSES


def map_error(exc: BaseException, session_id: str | None = None) -> BaseException:
    """Translate a low-level error into the power_store error a caller should see.

    *session_id* is the session the failing op creates, if it creates one: a unique violation
    there means another writer created it first.
    """
    if isinstance(exc, PowerStoreError):
        return exc
    if isinstance(exc, UnicodeEncodeError):
        return InvalidArgument(f"text is not valid unicode (lone surrogate?): {exc.reason}")
    state = sqlstate(exc)
    if state == UNIQUE_VIOLATION and session_id is not None:
        return SessionExists(session_id)
    mapped: PowerStoreError
    if state is not None and state.startswith("22"):
        # Data exception: a value PostgreSQL refuses (NUL in text, a number out of range). Also
        # raised by asyncpg itself when it cannot encode an argument (a lone surrogate).
        mapped = InvalidArgument(f"PostgreSQL refused a value: {exc}")
    elif is_connection_lost(exc):
        mapped = DatabaseError(f"connection to PostgreSQL lost: {exc}", sqlstate=state or "08006")
    else:
        cls = StorageFull if state == _DISK_FULL else DatabaseError
        mapped = cls(f"PostgreSQL error {state}: {exc}", sqlstate=state)
    mapped.__cause__ = exc
    return mapped
