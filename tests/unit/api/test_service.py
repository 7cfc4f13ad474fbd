"""The service layer against the in-memory repository: actions, idempotency, If-Match and errors, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from services.api.incidents.domain import AlertFields, Incident, InvalidInput, Status
from services.api.incidents.events import Origin
from services.api.incidents.service import IncidentService, RequestKey
from services.api.storage.repository import (
    DedupKeyInUse,
    IdempotencyMismatch,
    IncidentRepository,
    NotFound,
    PreconditionFailed,
)
from tests.fakes.repository import InMemoryIncidentRepository

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ORIGIN = Origin(actor="alice", request_id="req-1")


def _service() -> tuple[IncidentService, InMemoryIncidentRepository]:
    repo = InMemoryIncidentRepository()
    return IncidentService(repo, clock=lambda: NOW), repo


def _ack(incident: Incident, now: datetime) -> None:
    incident.acknowledge(now)


def _resolve(incident: Incident, now: datetime) -> None:
    incident.resolve(now)


def _delete(incident: Incident, now: datetime) -> None:
    incident.delete(now)


def test_the_fake_is_an_incident_repository() -> None:
    assert isinstance(InMemoryIncidentRepository(), IncidentRepository)


async def test_create_answers_the_id_and_records_one_created_event() -> None:
    service, repo = _service()
    answer = await service.create("disk full", None, ORIGIN)
    assert answer.status_code == 200 and answer.version == 1 and not answer.replayed
    assert msgspec.json.decode(answer.body) == {"status": "INCIDENT CREATED", "ID": "1"}
    [event] = repo.events
    assert (event.type, event.subject, event.incidentversion) == ("incident.created", "1", 1)
    assert (event.actor, event.requestid) == ("alice", "req-1")


async def test_actions_change_the_incident_and_each_records_its_event_in_order() -> None:
    service, repo = _service()
    await service.create("disk full", None, ORIGIN)
    ack = await service.change(1, _ack, "INCIDENT ACKNOWLEDGED", ORIGIN)
    again = await service.change(1, _ack, "INCIDENT ACKNOWLEDGED", ORIGIN)  # a no-op: no event
    resolved = await service.change(1, _resolve, "INCIDENT RESOLVED", ORIGIN)
    assert (ack.version, again.version, resolved.version) == (2, 2, 3)
    assert msgspec.json.decode(resolved.body) == {"status": "INCIDENT RESOLVED"}
    assert [e.type for e in repo.events] == ["incident.created", "incident.acknowledged", "incident.resolved"]
    stored = await repo.get(1)
    assert stored is not None and stored.status is Status.RESOLVED
    assert [entry.version for entry in await repo.timeline(1)] == [1, 2, 3]


async def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_changes_nothing() -> None:
    service, repo = _service()
    key = RequestKey("k-1", "fingerprint-a")
    first = await service.create("disk full", None, ORIGIN, key)
    retry = await service.create("disk full", None, ORIGIN, key)
    assert retry.replayed and retry.body == first.body and retry.version is None
    assert len(repo.incidents) == 1 and len(repo.events) == 1
    with pytest.raises(IdempotencyMismatch):
        await service.create("disk full", None, ORIGIN, RequestKey("k-1", "fingerprint-b"))


async def test_an_idempotent_action_is_applied_once() -> None:
    service, repo = _service()
    await service.create("disk full", None, ORIGIN)
    key = RequestKey("ack-1", "fp")
    await service.change(1, _ack, "INCIDENT ACKNOWLEDGED", ORIGIN, key=key)
    await service.change(1, lambda i, now: i.unacknowledge(now), "INCIDENT UNACKNOWLEDGED", ORIGIN)
    replay = await service.change(1, _ack, "INCIDENT ACKNOWLEDGED", ORIGIN, key=key)
    assert replay.replayed
    assert [e.type for e in repo.events][-1] == "incident.unacknowledged"  # the retry did not ack again


async def test_if_match_with_an_old_version_is_refused_with_the_current_one() -> None:
    service, repo = _service()
    await service.create("disk full", None, ORIGIN)
    await service.change(1, _ack, "INCIDENT ACKNOWLEDGED", ORIGIN, expected_version=1)
    with pytest.raises(PreconditionFailed) as refused:
        await service.change(1, _resolve, "INCIDENT RESOLVED", ORIGIN, expected_version=1)
    assert refused.value.current == 2
    assert len(repo.events) == 2


async def test_unknown_deleted_and_invalid_are_errors_and_write_nothing() -> None:
    service, repo = _service()
    with pytest.raises(NotFound):
        await service.change(7, _ack, "INCIDENT ACKNOWLEDGED", ORIGIN)
    with pytest.raises(InvalidInput):
        await service.create("   ", None, ORIGIN)
    await service.create("disk full", None, ORIGIN)
    await service.change(1, _delete, "INCIDENT DELETED", ORIGIN)
    with pytest.raises(NotFound):
        await service.change(1, _ack, "INCIDENT ACKNOWLEDGED", ORIGIN)
    assert [e.type for e in repo.events] == ["incident.created", "incident.deleted"]


async def test_one_open_incident_per_dedup_key() -> None:
    service, _ = _service()
    await service.create("disk full", AlertFields(dedup_key="disk"), ORIGIN)
    with pytest.raises(DedupKeyInUse):
        await service.create("disk full again", AlertFields(dedup_key="disk"), ORIGIN)
    await service.change(1, _resolve, "INCIDENT RESOLVED", ORIGIN)
    reopened = await service.create("disk full again", AlertFields(dedup_key="disk"), ORIGIN)
    assert msgspec.json.decode(reopened.body)["ID"] == "2"
