"""power_store — an async-native session store for LLM agents, on SQLite or PostgreSQL.

``AsyncSessionStore`` for asyncio code, ``SessionStore`` (a thin blocking facade over it) for
scripts. Same method names and arguments as power-loop 0.2.0's ``SessionStore``.
"""

from ._errors import (
    DatabaseError,
    FacadeMisuse,
    InvalidArgument,
    InvalidCompactionRange,
    InvalidForkPoint,
    NotSupported,
    PowerStoreError,
    SchemaTooNew,
    SessionExists,
    SessionNotFound,
    SpawnDepthExceeded,
    StorageFull,
    StoreClosed,
    StoreOpenError,
)
from ._iterators import BlockingIterator, PagedIterator
from ._listing import SessionPage
from ._maintenance import CheckpointResult, PruneResult
from ._models import (
    DEFAULT_DB_PATH,
    MAX_SPAWN_DEPTH,
    CompactionRow,
    Lineage,
    MessageRow,
    MessageState,
    SessionKind,
    SessionRow,
    SessionStateRow,
    SessionStatus,
    SubagentLifecycle,
)
from ._options import StoreOptions
from ._sink import BlockingSink, Sink
from ._stats import StoreStats
from ._store import AsyncSessionStore
from ._sync import SessionStore
from ._usage import ModelUsage, UsageTotals
from ._watch import Watch
from .sqlite._connection import check_aiosqlite as _check_aiosqlite

_check_aiosqlite()

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DB_PATH",
    "MAX_SPAWN_DEPTH",
    "AsyncSessionStore",
    "BlockingIterator",
    "BlockingSink",
    "CheckpointResult",
    "CompactionRow",
    "DatabaseError",
    "FacadeMisuse",
    "InvalidArgument",
    "InvalidCompactionRange",
    "InvalidForkPoint",
    "Lineage",
    "MessageRow",
    "MessageState",
    "ModelUsage",
    "NotSupported",
    "PagedIterator",
    "PowerStoreError",
    "PruneResult",
    "SchemaTooNew",
    "SessionExists",
    "SessionKind",
    "SessionNotFound",
    "SessionPage",
    "SessionRow",
    "SessionStateRow",
    "SessionStatus",
    "SessionStore",
    "Sink",
    "SpawnDepthExceeded",
    "StorageFull",
    "StoreClosed",
    "StoreOpenError",
    "StoreOptions",
    "StoreStats",
    "SubagentLifecycle",
    "UsageTotals",
    "Watch",
]
