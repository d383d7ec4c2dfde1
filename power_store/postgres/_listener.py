"""watch() across hosts: a dedicated LISTEN connection, open only while someone watches.

Every batch sends ``pg_notify(channel, payload)`` at COMMIT with the ids of the sessions it
wrote (or ``*``: wake everyone). NOTIFY only wakes: a woken watcher reads the database after
the last seq it handed out, so a notification lost, folded or repeated loses or repeats
nothing. Notifications sent while the listener was disconnected are gone, so after it
reconnects it wakes every watcher; and since a silently dead network delivers nothing and
raises nothing, every :data:`FALLBACK_EVERY` poll intervals all watchers look anyway.

A pooled connection cannot listen: its listener vanishes when it goes back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._watch import WatchHub

logger = logging.getLogger("power_store")

#: Poll intervals between two fallback wake-ups of every watcher.
FALLBACK_EVERY = 20


async def follow(
    hub: WatchHub,
    connect: Callable[[], Awaitable[Any]],
    channel: str,
    own_pid: Callable[[], int | None],
    interval: float,
) -> None:
    """Listen on *channel* while *hub* has waiting watchers; wake the ones concerned."""

    def on_notify(_conn: Any, pid: int, _channel: str, payload: str) -> None:
        if pid == own_pid():
            return  # this store's own commit: its writer woke the watchers already
        if payload == "*":
            hub.wake_all()
        else:
            hub.wake(payload.split(","))

    conn: Any = None
    ticks = 0
    try:
        while hub.waiting and not hub.closed:
            if conn is None or conn.is_closed():
                try:
                    conn = await connect()
                    await conn.add_listener(channel, on_notify)
                except Exception as exc:
                    logger.warning("power_store cannot LISTEN on PostgreSQL: %r", exc)
                    conn = None
                # Whatever was sent while nobody listened is gone: everyone looks again.
                hub.wake_all()
            await asyncio.sleep(interval)
            ticks += 1
            if ticks % FALLBACK_EVERY == 0:
                hub.wake_all()
    finally:
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except BaseException:
                conn.terminate()
                raise
