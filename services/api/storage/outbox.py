"""The outbox table: claim undelivered events in order, mark them delivered (pruned), report the backlog."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from services.api.storage.db import Db, from_micros, to_micros
from services.api.storage.tables import incident_events, outbox
from shared.events import utcnow


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    incident_id: int
    event_id: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Backlog:
    size: int
    oldest_age_seconds: float


@dataclass(slots=True)
class Claim:
    """Rows this relay may send now, in outbox order; delivered ones are deleted on `delivered`."""

    rows: list[OutboxRow]
    _db: Db
    _delivered: set[int] = field(default_factory=set)

    async def delivered(self, row_ids: set[int]) -> None:
        if not row_ids:
            return
        delete = outbox.delete().where(outbox.c.id.in_(sorted(row_ids)))
        if self._db.is_sqlite:
            async with self._db.write():
                await self._db.database.execute(delete)
        else:  # inside the claiming transaction
            await self._db.database.execute(delete)
        self._delivered |= row_ids


class OutboxStore:
    def __init__(self, db: Db) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def claim(self, limit: int, exclude: Collection[int] = ()) -> AsyncIterator[Claim]:
        """Claim the oldest rows of incidents not in `exclude` (parked ones).

        On MySQL rows stay locked (SKIP LOCKED) until the block ends.
        """
        if self.db.is_sqlite:
            async with self.db.session():
                rows = await self._rows(limit, lock=False, exclude=exclude)
            yield Claim(rows, self.db)
            return
        async with self.db.database.connection() as connection:
            # READ COMMITTED: FOR UPDATE then locks only the claimed rows, not the gap new inserts go into,
            # so the API's writes never wait for the relay's round trip to the event handler.
            await connection.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            async with connection.transaction():
                rows = await self._rows(limit, lock=True, exclude=exclude)
                yield Claim(await self._first_in_line(rows), self.db)

    async def delete(self, row_ids: Sequence[int]) -> None:
        """Forget delivered rows, one statement for the lot."""
        if not row_ids:
            return
        if self.db.is_sqlite:
            async with self.db.write():
                await self.db.database.execute(outbox.delete().where(outbox.c.id.in_(list(row_ids))))
            return
        # One autocommitted statement straight on the driver (ids are ints: nothing to escape): one round trip,
        # not four, and nothing compiled. Whatever it locks, it holds only while it runs.
        ids = ",".join(str(int(row_id)) for row_id in row_ids)
        async with self.db.database.connection() as connection, connection.raw_connection.cursor() as cursor:
            await cursor.execute(f"DELETE FROM outbox WHERE id IN ({ids})")  # noqa: S608

    async def backlog(self) -> Backlog:
        row = await self.db.database.fetch_one(
            sa.select(sa.func.count().label("size"), sa.func.min(outbox.c.created_at).label("oldest"))
        )
        size = int(row["size"]) if row else 0
        if not size or row is None or row["oldest"] is None:
            return Backlog(0, 0.0)
        return Backlog(size, max(0.0, (utcnow() - from_micros(int(row["oldest"]))).total_seconds()))

    async def _rows(self, limit: int, *, lock: bool, exclude: Collection[int]) -> list[OutboxRow]:
        stmt = sa.select(outbox.c.id, outbox.c.event_row_id, outbox.c.incident_id).order_by(outbox.c.id).limit(limit)
        if exclude:
            stmt = stmt.where(outbox.c.incident_id.not_in(sorted(exclude)))
        if lock:
            stmt = stmt.with_for_update(skip_locked=True)
        claimed = await self.db.database.fetch_all(stmt)
        if not claimed:
            return []
        payloads = {
            int(r["id"]): (str(r["event_id"]), str(r["payload"]))
            for r in await self.db.database.fetch_all(
                sa.select(incident_events.c.id, incident_events.c.event_id, incident_events.c.payload).where(
                    incident_events.c.id.in_([int(r["event_row_id"]) for r in claimed])
                )
            )
        }
        return [
            OutboxRow(
                id=int(r["id"]),
                incident_id=int(r["incident_id"]),
                event_id=payloads[int(r["event_row_id"])][0],
                payload=payloads[int(r["event_row_id"])][1].encode(),
            )
            for r in claimed
        ]

    async def _first_in_line(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Keep an incident's rows only from its first row on and without a gap (per-incident order).

        SKIP LOCKED skips the rows another relay holds, which may sit between two rows this claim got:
        an incident stops at its first row that is not the next of its own in the table.
        """
        if not rows:
            return rows
        incident_ids = sorted({r.incident_id for r in rows})
        queued: dict[int, list[int]] = {}
        for record in await self.db.database.fetch_all(
            sa.select(outbox.c.incident_id, outbox.c.id)
            .where(outbox.c.incident_id.in_(incident_ids))
            .order_by(outbox.c.id)
        ):
            queued.setdefault(int(record["incident_id"]), []).append(int(record["id"]))
        position: dict[int, int] = {}
        stopped: set[int] = set()
        kept: list[OutboxRow] = []
        for r in rows:  # in id order
            if r.incident_id in stopped:
                continue
            line, index = queued.get(r.incident_id, []), position.get(r.incident_id, 0)
            if index < len(line) and line[index] == r.id:
                kept.append(r)
                position[r.incident_id] = index + 1
            else:
                stopped.add(r.incident_id)
        return kept


def micros_ago(seconds: float) -> int:
    return to_micros(utcnow()) - int(seconds * 1_000_000)
