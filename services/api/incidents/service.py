"""The service layer between the routes and the repository: opens and changes incidents, builds their
CloudEvents (`EventRecorder`), owns idempotency.

Routes turn HTTP into calls here and an `Answer` back into HTTP; the repository only stores. A retry with
the same Idempotency-Key gets the first answer, stored in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from services.api.incidents.domain import AlertFields, Incident
from services.api.incidents.events import EventRecorder, Origin
from services.api.incidents.schemas import Created
from services.api.storage.repository import IdempotencyClaim, IncidentRepository, Replayed, StoredResponse
from services.api.web.bodies import StatusResponse
from shared.events import utcnow

Action = Callable[[Incident, datetime], None]


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: bytes
    version: int | None = None
    """The incident's version after the change (the ETag); None for a replayed answer."""
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class RequestKey:
    """An Idempotency-Key and the fingerprint of the request that carried it."""

    key: str
    fingerprint: str


class IncidentService:
    def __init__(self, repo: IncidentRepository, clock: Callable[[], datetime] = utcnow) -> None:
        self.repo = repo
        self.clock = clock

    async def create(
        self, message: str, alert: AlertFields | None, origin: Origin, key: RequestKey | None = None
    ) -> Answer:
        incident = Incident.open(message, self.clock(), alert)

        def render(created: Incident) -> StoredResponse:
            return _json(200, Created(status="INCIDENT CREATED", id=str(created.id)))

        return await self._once(key, render, lambda claim: self.repo.add(incident, EventRecorder(origin), claim))

    async def change(
        self,
        incident_id: int,
        action: Action,
        done: str,
        origin: Origin,
        *,
        expected_version: int | None = None,
        key: RequestKey | None = None,
    ) -> Answer:
        """Apply `action` to the incident (optimistic concurrency; `expected_version` is If-Match)."""

        async def write(claim: IdempotencyClaim | None) -> Incident:
            return await self.repo.change(
                incident_id,
                lambda i: action(i, self.clock()),
                EventRecorder(origin),
                expected_version=expected_version,
                claim=claim,
            )

        def render(_: Incident) -> StoredResponse:
            return _json(200, StatusResponse(status=done))

        return await self._once(key, render, write)

    async def _once(
        self,
        key: RequestKey | None,
        render: Callable[[Incident], StoredResponse],
        write: Callable[[IdempotencyClaim | None], Awaitable[Incident]],
    ) -> Answer:
        """Run `write` once per Idempotency-Key; a retry gets the first answer."""
        claim = None
        if key is not None:
            stored = await self.repo.stored_response(key.key, key.fingerprint)
            if stored is not None:
                return Answer(stored.status_code, stored.body, replayed=True)
            claim = IdempotencyClaim(key.key, key.fingerprint, render)
        try:
            incident = await write(claim)
        except Replayed:
            assert key is not None
            stored = await self.repo.stored_response(key.key, key.fingerprint)
            assert stored is not None
            return Answer(stored.status_code, stored.body, replayed=True)
        result = render(incident)
        return Answer(result.status_code, result.body, incident.version)


def _json(status: int, body: Any) -> StoredResponse:
    return StoredResponse(status, msgspec.json.encode(body))
