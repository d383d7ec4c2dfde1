"""power_store — an async-native SQLite session store for LLM agents.

``AsyncSessionStore`` for asyncio code, ``SessionStore`` (a thin blocking facade over it) for
scripts. Same method names and arguments as power-loop 0.2.0's ``SessionStore``.
"""

from ._connection import check_aiosqlite as _check_aiosqlite
from ._errors import (
    DatabaseError,
    FacadeMisuse,
    InvalidArgument,
    InvalidCompactionRange,
    PowerStoreError,
    SchemaTooNew,
    SessionExists,
    SessionNotFound,
    SpawnDepthExceeded,
    StorageFull,
    StoreClosed,
    StoreOpenError,
)
from ._models import (
    DEFAULT_DB_PATH,
    MAX_SPAWN_DEPTH,
    CompactionRow,
    MessageRow,
    MessageState,
    SessionKind,
    SessionRow,
    SessionStateRow,
    SessionStatus,
    SubagentLifecycle,
)
from ._store import AsyncSessionStore, StoreOptions
from ._sync import SessionStore

_check_aiosqlite()

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DB_PATH",
    "MAX_SPAWN_DEPTH",
    "AsyncSessionStore",
    "CompactionRow",
    "DatabaseError",
    "FacadeMisuse",
    "InvalidArgument",
    "InvalidCompactionRange",
    "MessageRow",
    "MessageState",
    "PowerStoreError",
    "SchemaTooNew",
    "SessionExists",
    "SessionKind",
    "SessionNotFound",
    "SessionRow",
    "SessionStateRow",
    "SessionStatus",
    "SessionStore",
    "SpawnDepthExceeded",
    "StorageFull",
    "StoreClosed",
    "StoreOpenError",
    "StoreOptions",
    "SubagentLifecycle",
]
