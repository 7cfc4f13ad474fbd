"""Valid CloudEvents for the event handler's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.events import CloudEvent, EventData, EventType, IncidentSnapshot, encode_event


def make_event(
    incident_id: int,
    version: int = 1,
    type_: EventType = EventType.CREATED,
    *,
    event_id: str | None = None,
    message: str = "disk full",
    requestid: str | None = None,
    traceparent: str | None = None,
) -> CloudEvent:
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    return CloudEvent(
        id=event_id or str(uuid.uuid4()),
        type=type_.subject,
        subject=str(incident_id),
        time=now,
        incidentversion=version,
        data=EventData(
            incident=IncidentSnapshot(
                id=incident_id,
                status="unresolved",
                acknowledged="no",
                message=message,
                comments=[],
                version=version,
                created_at=now,
                updated_at=now,
            )
        ),
        requestid=requestid,
        traceparent=traceparent,
    )


def raw(event: CloudEvent) -> bytes:
    return encode_event(event)
