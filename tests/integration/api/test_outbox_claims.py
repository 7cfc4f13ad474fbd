"""Two relays (two API replicas) claiming one outbox: neither sends an incident's event past one the other holds."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from services.api.storage.db import Db
from services.api.storage.outbox import OutboxStore
from services.api.storage.tables import incident_events, outbox


async def _rows(db: Db, incident_id: int, versions: range) -> list[int]:
    """Outbox rows of `incident_id`'s events at `versions`, in order; returns their ids."""
    ids = []
    for version in versions:
        event_row = await db.database.execute(
            incident_events.insert().values(
                event_id=str(uuid.uuid4()),
                incident_id=incident_id,
                version=version,
                type="incident.commented",
                actor="test",
                payload="{}",
                created_at=version,
            )
        )
        ids.append(
            await db.database.execute(
                outbox.insert().values(event_row_id=event_row, incident_id=incident_id, created_at=version)
            )
        )
    return [int(i) for i in ids]


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)  # SKIP LOCKED: the MySQL path
async def test_a_claim_never_skips_an_events_row_that_another_relay_holds(database_url: str) -> None:
    db = Db(database_url)
    await db.connect()
    try:
        v1, v2, v3 = await _rows(db, 603, range(1, 4))
        (other,) = await _rows(db, 604, range(1, 2))
        store = OutboxStore(db)
        # The other relay holds v2 only (its claim skipped v1, which was locked when it claimed). `databases`
        # connections are task-local: the other relay's lock is taken in a task of its own.
        locked, release = asyncio.Event(), asyncio.Event()

        async def other_relay() -> None:
            async with db.database.connection() as connection, connection.transaction():
                await connection.fetch_all(sa.select(outbox.c.id).where(outbox.c.id == v2).with_for_update())
                locked.set()
                await release.wait()

        holder = asyncio.create_task(other_relay())
        try:
            await asyncio.wait_for(locked.wait(), 10)
            async with store.claim(100) as claim:
                claimed = [row.id for row in claim.rows]
        finally:
            release.set()
            await holder
        # v1 may go; v3 must wait behind v2. Other incidents go on.
        assert claimed == [v1, other], (claimed, v1, v2, v3)
    finally:
        await db.disconnect()
