"""The error tree. Each backend maps its driver's errors onto it in one place
(``sqlite/_errors.py``, ``postgres/_errors.py``).

::

    PowerStoreError
    ├── InvalidArgument (ValueError)        bad input; nothing was written
    │   ├── SessionNotFound                 unknown session id
    │   ├── SessionExists                   create_session with an id already taken
    │   ├── SpawnDepthExceeded              parent too deep for another subagent
    │   ├── InvalidCompactionRange          from/to outside the session's active messages
    │   └── InvalidForkPoint                fork at a seq that is not an active message
    ├── StoreClosed (RuntimeError)          the store is closed, closing, or was never opened
    ├── FacadeMisuse (RuntimeError)         sync facade called from its own loop thread / after fork
    ├── NotSupported                        the call has no meaning on this backend
    ├── StoreOpenError                      the path cannot be opened as a power_store database
    │   └── SchemaTooNew                    written by a newer power_store
    └── DatabaseError                       the database failed while running a write or a read
        └── StorageFull                     disk or database size limit reached

Where power-loop 0.2.0 raised ``ValueError`` (unknown session, unknown parent, spawn depth),
the new errors subclass ``ValueError`` too, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class PowerStoreError(Exception):
    """Base class of every error power_store raises on purpose."""


class InvalidArgument(PowerStoreError, ValueError):
    """An argument was rejected before anything was written."""


class SessionNotFound(InvalidArgument):
    """No session with this id exists (or it was closed)."""

    def __init__(self, session_id: str, what: str = "session") -> None:
        self.session_id = session_id
        super().__init__(f"{what} not found: {session_id!r}")


class SessionExists(InvalidArgument):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"session already exists: {session_id!r}")


class SpawnDepthExceeded(InvalidArgument):
    def __init__(self, parent_session_id: str, depth: int, max_depth: int) -> None:
        self.session_id = parent_session_id
        self.depth = depth
        self.max_depth = max_depth
        super().__init__(
            f"spawn depth {depth} under parent {parent_session_id!r} exceeds max {max_depth}"
        )


class InvalidCompactionRange(InvalidArgument):
    def __init__(self, session_id: str, from_seq: object, to_seq: object, why: str) -> None:
        self.session_id = session_id
        self.from_seq = from_seq
        self.to_seq = to_seq
        super().__init__(
            f"invalid compaction range {from_seq!r}..{to_seq!r} for session {session_id!r}: {why}"
        )


class InvalidForkPoint(InvalidArgument):
    def __init__(self, session_id: str, at_seq: int, why: str) -> None:
        self.session_id = session_id
        self.at_seq = at_seq
        super().__init__(f"cannot fork session {session_id!r} at seq {at_seq}: {why}")


class StoreClosed(PowerStoreError, RuntimeError):
    def __init__(self, path: str, state: str = "closed") -> None:
        self.path = path
        super().__init__(f"the store on {path!r} is {state}")


class FacadeMisuse(PowerStoreError, RuntimeError):
    """The sync facade was called where it cannot work (its own loop thread, a forked child)."""


class NotSupported(PowerStoreError):
    """The call has no meaning on this store's backend (e.g. ``checkpoint()`` on PostgreSQL,
    which manages its own write-ahead log)."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(f"not supported on {path!r}: {why}")


class StoreOpenError(PowerStoreError):
    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(f"cannot open {path!r} as a power_store database: {why}")


class SchemaTooNew(StoreOpenError):
    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"schema version {found} was written by a newer power_store "
            f"(this one supports up to {supported})",
        )


class DatabaseError(PowerStoreError):
    """The database failed; ``sqlite_errorname`` (SQLite, e.g. ``SQLITE_IOERR_WRITE``) or
    ``sqlstate`` (PostgreSQL, e.g. ``40P01``) says how."""

    def __init__(
        self, message: str, sqlite_errorname: str | None = None, *, sqlstate: str | None = None
    ) -> None:
        self.sqlite_errorname = sqlite_errorname
        self.sqlstate = sqlstate
        super().__init__(message)


class StorageFull(DatabaseError):
    """The disk, or the database's ``max_page_count``, is full. Retry once space is back."""
