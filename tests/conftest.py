"""Shared fixtures: one ``store`` fixture parametrised over both facades and both kinds of
database, so every behaviour test runs against the async store and the sync facade alike."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from power_store import AsyncSessionStore, SessionStore


class SyncAsAsync:
    """Drives a SessionStore through an awaitable surface so tests can treat both alike.

    Calls are made directly from the test's event-loop thread — the "sync helper called from
    async code" case the facade must support.
    """

    def __init__(self, store: SessionStore) -> None:
        self.sync = store
        self.path = store.path

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.sync, name)

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


@pytest.fixture(params=["file", "memory"])
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "sessions.db") if request.param == "file" else ":memory:"


@pytest_asyncio.fixture(params=["async", "sync"])
async def store(request: pytest.FixtureRequest, db_path: str) -> AsyncIterator[Any]:
    if request.param == "async":
        async with AsyncSessionStore.open(db_path) as s:
            yield s
    else:
        sync = SessionStore.open(db_path)
        try:
            yield SyncAsAsync(sync)
        finally:
            sync.close()


@pytest.fixture
def file_path(tmp_path: Path) -> str:
    return str(tmp_path / "sessions.db")


def is_sync(store: Any) -> bool:
    return isinstance(store, SyncAsAsync)


async def collect(store: Any, name: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Drain an iterator-returning method on either facade (blocking generator or async)."""
    if is_sync(store):
        return list(getattr(store.sync, name)(*args, **kwargs))
    return [item async for item in getattr(store, name)(*args, **kwargs)]
