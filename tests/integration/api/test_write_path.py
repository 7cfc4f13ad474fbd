"""One write path: a create written alone, after its group failed, goes the grouped way with a group of one, so it
is stored and handed on exactly as a grouped one is (SQLite and MariaDB)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from services.api.incidents.domain import AlertFields, Incident
from services.api.incidents.events import EventRecorder, Origin
from services.api.storage.db import Db
from services.api.storage.outbox import OutboxRow
from services.api.storage.repository import DedupKeyInUse, SqlIncidentRepository
from services.api.storage.tables import incident_events, outbox
from shared.events import utcnow

RECORDER = EventRecorder(Origin("tester"))


async def test_creates_written_alone_after_their_group_failed_are_handed_to_the_relay(database_url: str) -> None:
    handed: list[OutboxRow] = []
    repo = SqlIncidentRepository(Db(database_url), on_created=handed.extend)
    await repo.db.connect()
    try:
        await repo.add(Incident.open("holder", utcnow(), AlertFields(dedup_key="disk")), RECORDER)
        handed.clear()
        writes = [repo.add(Incident.open(f"ok{i}", utcnow()), RECORDER) for i in range(5)]
        writes.insert(2, repo.add(Incident.open("dup", utcnow(), AlertFields(dedup_key="disk")), RECORDER))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        assert isinstance(outcomes.pop(2), DedupKeyInUse)
        committed = [o for o in outcomes if isinstance(o, Incident)]
        assert len(committed) == 5
        db = repo.db.database
        stored = await db.fetch_all(
            sa.select(outbox.c.id, outbox.c.incident_id, incident_events.c.event_id, incident_events.c.payload)
            .join(incident_events, incident_events.c.id == outbox.c.event_row_id)
            .where(outbox.c.incident_id.in_([i.id for i in committed]))
        )
        expected = [OutboxRow(r["id"], r["incident_id"], r["event_id"], str(r["payload"]).encode()) for r in stored]
        assert sorted(handed, key=lambda row: row.id) == sorted(expected, key=lambda row: row.id)
        assert len(handed) == 5
    finally:
        await repo.db.disconnect()
