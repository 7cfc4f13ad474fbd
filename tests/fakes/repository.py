"""An in-memory IncidentRepository: the same contract as the SQL one, for behaviour tests in milliseconds."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime

from services.api.incidents.domain import Incident, firing_after
from services.api.incidents.events import EventRecorder
from services.api.storage.db import to_micros
from services.api.storage.repository import (
    Activity,
    AlertRepeat,
    DedupKeyInUse,
    IdempotencyClaim,
    IdempotencyMismatch,
    ListFilter,
    NotFound,
    PreconditionFailed,
    Repeated,
    Replayed,
    StoredResponse,
    TimelineEntry,
)
from shared.events import CloudEvent, decode_event


class InMemoryIncidentRepository:
    """Stores copies, so a caller's object never changes what is stored; `events` is the outbox in order."""

    def __init__(self) -> None:
        self.incidents: dict[int, Incident] = {}
        self.events: list[CloudEvent] = []
        self.answers: dict[str, tuple[str, StoredResponse]] = {}
        self._timeline: dict[int, list[TimelineEntry]] = {}

    async def add(self, incident: Incident, recorder: EventRecorder, claim: IdempotencyClaim | None = None) -> Incident:
        self._check_claim(claim)
        key = incident.open_dedup_key
        if key is not None and any(_holds(i, incident.dedup_owner, key) for i in self.incidents.values()):
            raise DedupKeyInUse(f"another open incident has dedup_key {key!r}")
        incident.id = max(self.incidents, default=0) + 1
        self._commit(incident, recorder, claim)
        return incident

    async def change(
        self,
        incident_id: int,
        mutate: Callable[[Incident], None],
        recorder: EventRecorder,
        *,
        expected_version: int | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> Incident:
        stored = self.incidents.get(incident_id)
        if stored is None or stored.deleted:
            raise NotFound(incident_id)
        if expected_version is not None and stored.version != expected_version:
            raise PreconditionFailed(stored.version)
        self._check_claim(claim)
        incident = copy.deepcopy(stored)
        mutate(incident)
        key = incident.open_dedup_key
        others = (i for i in self.incidents.values() if i.id != incident_id)
        if key is not None and any(_holds(i, incident.dedup_owner, key) for i in others):
            raise DedupKeyInUse(f"another open incident has dedup_key {key!r}")
        self._commit(incident, recorder, claim)
        return incident

    async def get(self, incident_id: int) -> Incident | None:
        found = self.incidents.get(incident_id)
        return None if found is None or found.deleted else copy.deepcopy(found)

    async def find_open(self, owner: str, dedup_key: str) -> int | None:
        return next((i.id for i in self.incidents.values() if _holds(i, owner, dedup_key)), None)

    async def repeat_alert(self, repeat: AlertRepeat) -> Repeated:
        found = next((i for i in self.incidents.values() if _holds(i, repeat.owner, repeat.dedup_key)), None)
        if found is None:
            return Repeated(None)
        if repeat.firing is not None and firing_after(found.firing, repeat.firing, repeat.partial) != found.firing:
            return Repeated(found.id)
        found.count_alert(repeat.at)
        return Repeated(found.id, counted=True)

    async def quiet_alerts(self, integration: str, quiet_since: datetime, limit: int = 100) -> list[int]:
        quiet = [
            i
            for i in self.incidents.values()
            if i.integration == integration
            and i.open_dedup_key is not None
            and i.last_alert_at is not None
            and i.last_alert_at < quiet_since
        ]
        return [i.id for i in sorted(quiet, key=lambda i: i.last_alert_at or quiet_since) if i.id][:limit]

    async def list_incidents(self, query: ListFilter) -> list[Incident]:
        found = [
            copy.deepcopy(i)
            for i in sorted(self.incidents.values(), key=lambda i: -(i.id or 0))
            if not i.deleted
            and (query.status is None or i.status is query.status)
            and (query.acknowledged is None or i.acknowledged is query.acknowledged)
            and (query.severity is None or i.alert.severity is query.severity)
            and (query.source is None or i.alert.source == query.source)
            and (query.dedup_key is None or i.alert.dedup_key == query.dedup_key)
            and (query.before_id is None or (i.id or 0) < query.before_id)
        ]
        return found[: query.limit]

    async def activity(self, found: list[Incident]) -> dict[int, Activity]:
        return {}

    async def stored_response(self, key: str, fingerprint: str) -> StoredResponse | None:
        found = self.answers.get(key)
        if found is None:
            return None
        if found[0] != fingerprint:
            raise IdempotencyMismatch("Idempotency-Key was already used for a different request")
        return found[1]

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        return list(self._timeline.get(incident_id, []))

    def _check_claim(self, claim: IdempotencyClaim | None) -> None:
        if claim is not None and claim.key in self.answers:
            raise Replayed()

    def _commit(self, incident: Incident, recorder: EventRecorder, claim: IdempotencyClaim | None) -> None:
        """What one SQL transaction writes: the incident, its events (the outbox) and the stored answer."""
        assert incident.id is not None
        recorded = recorder.events(incident)  # may refuse (EventTooLarge) before anything is stored
        for event in recorded:
            self.events.append(decode_event(event.payload))
            self._timeline.setdefault(incident.id, []).append(
                TimelineEntry(
                    to_micros(event.at),
                    event.type,
                    event.version,
                    event.actor,
                    event.id,
                    event.request_id,
                    event.comment,
                )
            )
        if claim is not None:
            self.answers[claim.key] = (claim.fingerprint, claim.render(incident))
        stored = copy.deepcopy(incident)
        stored.changes = []
        self.incidents[incident.id] = stored


def _holds(incident: Incident, owner: str, dedup_key: str) -> bool:
    return incident.open_dedup_key == dedup_key and incident.dedup_owner == owner
