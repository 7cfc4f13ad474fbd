"""Group commit: concurrent creates share a transaction, and one that can't be stored fails alone."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from services.api.db import Db
from services.api.domain import AlertFields, Incident
from services.api.events import EventRecorder, EventTooLarge, Origin
from services.api.repository import (
    MAX_GROUP_COMMIT,
    DedupKeyInUse,
    IdempotencyClaim,
    Replayed,
    SqlIncidentRepository,
    StoredResponse,
)
from services.api.tables import idempotency_keys, incident_events, incidents, outbox
from shared.events import utcnow
from shared.relay import MAX_EVENT_BYTES

RECORDER = EventRecorder(Origin())


class CountingRepository(SqlIncidentRepository):
    """Counts the transactions the group commit opens (a seam of our own class, not of a library)."""

    groups: list[int]

    async def _insert_group(self, group):  # type: ignore[no-untyped-def]
        self.groups.append(len(group))
        await super()._insert_group(group)


@pytest.fixture
async def repo(database_url: str) -> CountingRepository:
    found = CountingRepository(Db(database_url))
    found.groups = []
    return found


def _render(incident: Incident) -> StoredResponse:
    return StoredResponse(200, f'{{"id":"{incident.id}"}}'.encode())


async def test_concurrent_creates_share_a_transaction_and_each_gets_its_rows(repo: CountingRepository) -> None:
    await repo.db.connect()
    try:
        created = await asyncio.gather(*[repo.add(Incident.open(f"m{i}", utcnow()), RECORDER) for i in range(300)])
        ids = [incident.id for incident in created]
        assert len(set(ids)) == 300 and all(ids)
        assert max(repo.groups) > 1, "concurrent creates should have been grouped"
        assert max(repo.groups) <= MAX_GROUP_COMMIT
        db = repo.db.database
        stored = {int(r[0]): str(r[1]) for r in await db.fetch_all(sa.select(incidents.c.id, incidents.c.message))}
        assert all(stored[incident.id] == incident.message for incident in created if incident.id)
        events = await db.fetch_all(sa.select(incident_events.c.id, incident_events.c.incident_id))
        assert sorted(int(r[1]) for r in events) == sorted(i for i in ids if i)
        rows = await db.fetch_all(sa.select(outbox.c.event_row_id, outbox.c.incident_id))
        assert {(int(r[0]), int(r[1])) for r in rows} == {(int(r[0]), int(r[1])) for r in events}
        payloads = await db.fetch_all(sa.select(incident_events.c.incident_id, incident_events.c.payload))
        assert all(f'"subject":"{r[0]}"' in str(r[1]) for r in payloads)
    finally:
        await repo.db.disconnect()


async def test_a_failing_create_does_not_fail_its_group(repo: CountingRepository) -> None:
    await repo.db.connect()
    try:
        await repo.add(Incident.open("first", utcnow(), AlertFields(dedup_key="disk")), RECORDER)
        await repo.add(Incident.open("keyed", utcnow()), RECORDER, IdempotencyClaim("key-1", "fp", _render))
        repo.groups.clear()
        writes = [repo.add(Incident.open(f"ok{i}", utcnow()), RECORDER) for i in range(20)]
        writes.insert(5, repo.add(Incident.open("dup", utcnow(), AlertFields(dedup_key="disk")), RECORDER))
        writes.insert(9, repo.add(Incident.open("again", utcnow()), RECORDER, IdempotencyClaim("key-1", "fp", _render)))
        writes.insert(12, repo.add(_too_large(), RECORDER))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        assert repo.groups and repo.groups[0] > 1
        assert isinstance(outcomes[5], DedupKeyInUse)
        assert isinstance(outcomes[9], Replayed)
        assert isinstance(outcomes[12], EventTooLarge)
        good = [o for o in outcomes if isinstance(o, Incident)]
        assert len(good) == 20 and all(o.id for o in good)
        db = repo.db.database
        assert await db.fetch_val(sa.select(sa.func.count()).select_from(incidents)) == 22
        assert await db.fetch_val(sa.select(sa.func.count()).select_from(outbox)) == 22
        assert await db.fetch_val(sa.select(sa.func.count()).select_from(idempotency_keys)) == 1
    finally:
        await repo.db.disconnect()


def _too_large() -> Incident:
    """An incident whose last event can't fit in one request to the event handler."""
    incident = Incident.open("big", utcnow())
    comment = "c" * 10_000
    for _ in range(MAX_EVENT_BYTES // len(comment) + 5):
        incident.comment(comment, utcnow())
    return incident
