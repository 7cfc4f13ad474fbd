"""Group commit: concurrent creates (and changes) share a transaction, and one that can't be stored fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import pytest
import sqlalchemy as sa

from services.api.incidents.domain import AlertFields, Incident, IncidentDeleted
from services.api.incidents.events import EventRecorder, EventTooLarge, Origin
from services.api.storage.db import Db
from services.api.storage.repository import (
    MAX_GROUP_COMMIT,
    DedupKeyInUse,
    IdempotencyClaim,
    NotFound,
    PreconditionFailed,
    Replayed,
    SqlIncidentRepository,
    StoredResponse,
)
from services.api.storage.tables import idempotency_keys, incident_events, incidents, outbox
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


# Text the SQL must carry exactly: quotes, backslashes, a NUL, what looks like SQL or a format mark, non-ASCII.
AWKWARD = ['it\'s \\ "quoted" \x00 %s %(x)s ?', "'); DROP TABLE incidents; --", "café ✓ 日本 🔥", "a\r\nb\tc"]


async def test_grouped_creates_store_any_text_exactly(repo: CountingRepository) -> None:
    await repo.db.connect()
    try:
        labels = tuple(sorted((f"k{i}", text) for i, text in enumerate(AWKWARD)))
        writes = [
            repo.add(Incident.open(text, utcnow(), AlertFields(source=text, labels=labels, dedup_key=text)), RECORDER)
            for text in AWKWARD
        ]
        created = await asyncio.gather(*writes)
        assert max(repo.groups) > 1
        for text, incident in zip(AWKWARD, created, strict=True):
            assert incident.id is not None
            stored = await repo.get(incident.id)
            assert stored is not None
            assert stored.message == text
            assert stored.alert.source == text and stored.alert.dedup_key == text
            assert stored.alert.labels == labels
            payload = await repo.db.database.fetch_val(
                sa.select(incident_events.c.payload).where(incident_events.c.incident_id == incident.id)
            )
            assert msgspec.json.decode(str(payload))["data"]["incident"]["message"] == text
    finally:
        await repo.db.disconnect()


def _too_large() -> Incident:
    """An incident whose last event can't fit in one request to the event handler."""
    incident = Incident.open("big", utcnow())
    comment = "c" * 10_000
    for _ in range(MAX_EVENT_BYTES // len(comment) + 5):
        incident.comment(comment, utcnow())
    return incident


class CountingChanges(SqlIncidentRepository):
    """Counts the change groups that commit together (a seam of our own class)."""

    change_groups: list[int]
    one_by_one: int = 0

    async def _apply_changes(self, group):  # type: ignore[no-untyped-def]
        self.change_groups.append(len(group))
        return await super()._apply_changes(group)

    async def _change_one(self, request):  # type: ignore[no-untyped-def]
        self.one_by_one += 1
        return await super()._change_one(request)


@pytest.fixture
async def changes_repo(database_url: str) -> CountingChanges:
    found = CountingChanges(Db(database_url))
    found.change_groups = []
    return found


def _comment(text: str) -> Callable[[Incident], None]:
    return lambda incident: incident.comment(text, utcnow())


async def test_concurrent_changes_share_a_transaction_in_arrival_order(changes_repo: CountingChanges) -> None:
    repo = changes_repo
    await repo.db.connect()
    try:
        created = [await repo.add(Incident.open(f"m{i}", utcnow()), RECORDER) for i in range(5)]
        ids = [incident.id for incident in created if incident.id is not None]
        writes = [repo.change(ids[n % 5], _comment(f"c{n}"), RECORDER) for n in range(100)]
        changed = await asyncio.gather(*writes)
        assert max(repo.change_groups) > 1, "concurrent changes should have been grouped"
        assert repo.one_by_one == 0, "no change should have needed the one-by-one fallback"
        for incident_id in ids:
            mine = [f"c{n}" for n in range(100) if ids[n % 5] == incident_id]
            stored = await repo.get(incident_id)
            assert stored is not None and stored.comments == mine  # each incident's comments in arrival order
            assert stored.version == 1 + len(mine)
            versions = [i.version for i in changed if i.id == incident_id]
            assert versions == list(range(2, 2 + len(mine)))  # each request saw its own change
            timeline = await repo.timeline(incident_id)
            assert [e.version for e in timeline] == list(range(1, 2 + len(mine)))
            assert [e.comment for e in timeline[1:]] == mine
        rows = await repo.db.database.fetch_all(sa.select(outbox.c.incident_id, outbox.c.event_row_id))
        assert len(rows) == 105
    finally:
        await repo.db.disconnect()


async def test_a_failing_change_does_not_fail_its_group(changes_repo: CountingChanges) -> None:
    repo = changes_repo
    await repo.db.connect()
    try:
        keyed = await repo.add(Incident.open("keyed", utcnow(), AlertFields(dedup_key="disk")), RECORDER)
        assert keyed.id is not None
        await repo.change(keyed.id, lambda i: i.resolve(utcnow()), RECORDER)
        await repo.add(Incident.open("holder", utcnow(), AlertFields(dedup_key="disk")), RECORDER)  # open, same key
        plain = [await repo.add(Incident.open(f"p{i}", utcnow()), RECORDER) for i in range(3)]
        first, second, third = (i.id for i in plain)
        assert first is not None and second is not None and third is not None
        await repo.change(third, _comment("once"), RECORDER, claim=IdempotencyClaim("k-1", "fp", _render))
        repo.change_groups.clear()

        writes = {
            "ok-1": repo.change(first, _comment("a"), RECORDER),
            "missing": repo.change(999_999, _comment("x"), RECORDER),
            "if-match": repo.change(second, _comment("x"), RECORDER, expected_version=7),
            "ok-2": repo.change(second, _comment("b"), RECORDER, expected_version=1),
            "deleted": repo.change(first, lambda i: i.delete(utcnow()), RECORDER),
            "after-delete": repo.change(first, _comment("too late"), RECORDER),
            "dedup": repo.change(keyed.id, lambda i: i.reopen(utcnow()), RECORDER),
            "replayed": repo.change(third, _comment("once"), RECORDER, claim=IdempotencyClaim("k-1", "fp", _render)),
            "ok-3": repo.change(second, _comment("c"), RECORDER),
        }
        outcomes = dict(zip(writes, await asyncio.gather(*writes.values(), return_exceptions=True), strict=True))
        assert isinstance(outcomes["missing"], NotFound)
        assert isinstance(outcomes["if-match"], PreconditionFailed) and outcomes["if-match"].current == 1
        assert isinstance(outcomes["after-delete"], NotFound | IncidentDeleted)
        assert isinstance(outcomes["dedup"], DedupKeyInUse)
        assert isinstance(outcomes["replayed"], Replayed)
        for name in ("ok-1", "ok-2", "ok-3", "deleted"):
            assert isinstance(outcomes[name], Incident), (name, outcomes[name])
        stored = await repo.get(second)
        assert stored is not None and stored.comments == ["b", "c"] and stored.version == 3
        assert await repo.get(first) is None  # deleted, after its comment
        assert [e.type for e in await repo.timeline(first)] == ["created", "commented", "deleted"]
        reopened = await repo.db.database.fetch_val(sa.select(incidents.c.status).where(incidents.c.id == keyed.id))
        assert reopened == "resolved"
        third_stored = await repo.get(third)
        assert third_stored is not None and third_stored.comments == ["once"]
    finally:
        await repo.db.disconnect()


async def test_a_group_of_large_events_is_stored_in_statements_that_fit(changes_repo: CountingChanges) -> None:
    """Each change's event carries the whole incident: 40 of ≈ 450 KB are ≈ 18 MB, over MariaDB's default
    max_allowed_packet (16 MiB) for one statement."""
    repo = changes_repo
    await repo.db.connect()
    try:
        ids: list[int] = []
        for n in range(40):
            incident = Incident.open(f"large {n}", utcnow())
            for _ in range(45):  # comments are at most 10,000 characters
                incident.comment("w" * 10_000, utcnow())
            stored = await repo.add(incident, RECORDER)
            assert stored.id is not None
            ids.append(stored.id)
        acked = await asyncio.gather(*[repo.change(i, lambda x: x.acknowledge(utcnow()), RECORDER) for i in ids])
        assert [i.version for i in acked] == [47] * 40  # created, 45 comments, acknowledged
        assert repo.one_by_one == 0
        assert max(repo.change_groups) > 1, repo.change_groups
        count = sa.select(sa.func.count()).select_from(incident_events).where(incident_events.c.type == "acknowledged")
        assert await repo.db.database.fetch_val(count) == 40
    finally:
        await repo.db.disconnect()
