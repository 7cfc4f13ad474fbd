"""Turn the domain's recorded changes into the CloudEvents that go to the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.api.domain import Change
from shared.events import CloudEvent, EventData, EventType, IncidentSnapshot, new_event_id


@dataclass(frozen=True, slots=True)
class Origin:
    """Who made a change and which request carried it."""

    actor: str = "anonymous"
    request_id: str | None = None
    traceparent: str | None = None


def snapshot(incident_id: int, created_at: datetime, change: Change) -> IncidentSnapshot:
    return IncidentSnapshot(
        id=incident_id,
        status=change.status.value,
        acknowledged=change.acknowledged.value,
        message=change.message,
        comments=list(change.comments),
        version=change.version,
        created_at=created_at,
        updated_at=change.at,
        severity=change.alert.severity.value if change.alert.severity else None,
        source=change.alert.source,
        labels=change.alert.label_map,
        dedup_key=change.alert.dedup_key,
    )


def cloud_event(incident_id: int, created_at: datetime, change: Change, origin: Origin) -> CloudEvent:
    return CloudEvent(
        id=new_event_id(),
        type=change.type.cloud_type,
        subject=str(incident_id),
        time=change.at,
        incidentversion=change.version,
        data=EventData(
            incident=snapshot(incident_id, created_at, change),
            comment=change.comment if change.type is EventType.COMMENTED else None,
        ),
        requestid=origin.request_id,
        traceparent=origin.traceparent,
        actor=origin.actor,
    )
