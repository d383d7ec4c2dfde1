"""The public surface: __all__ is sorted, complete, and only names that exist."""

from __future__ import annotations

import types

import aiosqlite

import power_store
from power_store.sqlite import _connection


def test_all_lists_exactly_the_public_names() -> None:
    # Its order is ruff's (RUF022, isort-style); here: no duplicates, nothing missing or extra.
    assert len(set(power_store.__all__)) == len(power_store.__all__)
    for name in power_store.__all__:
        assert hasattr(power_store, name), name
    # Subpackages (the backends, sqlite and postgres) are namespaces, not names of the API.
    public = {
        n
        for n, v in vars(power_store).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public - {"__version__"} == set(power_store.__all__)


def test_errors_keep_valueerror_where_the_reference_raised_it() -> None:
    for error in (
        power_store.SessionNotFound,
        power_store.SpawnDepthExceeded,
        power_store.InvalidArgument,
        power_store.InvalidCompactionRange,
    ):
        assert issubclass(error, ValueError)
        assert issubclass(error, power_store.PowerStoreError)


def test_aiosqlite_still_has_the_internals_we_use() -> None:
    """Fails loudly if an aiosqlite release renames what _connection.py relies on."""
    _connection.check_aiosqlite()
    conn = aiosqlite.connect(":memory:")
    assert hasattr(conn, "_thread")
    assert callable(conn._execute)
