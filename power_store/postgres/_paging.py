"""load_messages on PostgreSQL: the view's keyset queries, driving
:func:`power_store._paging.window` inside one snapshot."""

from __future__ import annotations

from typing import Any

from .._models import MessageRow
from .._paging import Anchor, Key, Keyed, Request, window
from .._rows import MESSAGE_COLUMNS, message_row
from ._queries import Conn, snapshot
from ._schema import render


class _View:
    """The SQL pieces of one view (active or all), all constants."""

    def __init__(self, schema: str, include_compacted: bool) -> None:
        self.schema = schema
        self.k1 = "seq" if include_compacted else "position"
        state = "" if include_compacted else " AND state = 'active'"
        self.select = (
            f"SELECT {MESSAGE_COLUMNS}, {self.k1} FROM {{s}}.messages WHERE session_id = $1{state}"
        )

    async def answer(self, conn: Conn, session_id: str, request: Request) -> Any:
        if isinstance(request, Anchor):
            r = await conn.fetchrow(
                render(
                    "SELECT position FROM {s}.messages WHERE session_id = $1 AND seq = $2",
                    self.schema,
                ),
                session_id,
                request.seq,
            )
            return (request.seq if r is None or r[0] is None else r[0]), request.seq
        return await self.fetch(
            conn, session_id, request.after, request.before, request.limit, request.backwards
        )

    async def fetch(
        self,
        conn: Conn,
        session_id: str,
        after: Key | None,
        before: Key | None,
        limit: int | None,
        backwards: bool,
    ) -> list[Keyed]:
        sql = self.select
        params: list[Any] = [session_id]
        for bound, op in ((after, ">"), (before, "<")):
            if bound is not None:
                params.extend(bound)
                sql += f" AND ({self.k1}, seq) {op} (${len(params) - 1}, ${len(params)})"
        direction = "DESC" if backwards else "ASC"
        sql += f" ORDER BY {self.k1} {direction}, seq {direction}"
        if limit is not None:
            params.append(limit)
            sql += f" LIMIT ${len(params)}"
        rows: list[Keyed] = [tuple(r) for r in await conn.fetch(render(sql, self.schema), *params)]
        if backwards:
            rows.reverse()
        return rows


async def load_messages(
    conn: Conn,
    schema: str,
    session_id: str,
    after_seq: int | None,
    before_seq: int | None,
    limit: int | None,
    tail: int | None,
    include_compacted: bool,
) -> list[MessageRow]:
    view = _View(schema, include_compacted)
    steps = window(after_seq, before_seq, limit, tail, include_compacted)
    async with snapshot(conn):
        try:
            request = next(steps)
            while True:
                request = steps.send(await view.answer(conn, session_id, request))
        except StopIteration as done:
            rows: list[Keyed] = done.value
    return [message_row(r) for r in rows]
