"""Turn the domain's recorded changes into the CloudEvents that go to the outbox (the service layer's part:
the repository stores what `EventRecorder` hands it, next to the change, in the same transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.api.incidents.domain import Change, Incident
from shared.events import CloudEvent, EventData, EventType, IncidentSnapshot, encode_event, new_event_id
from shared.relay import MAX_EVENT_BYTES


class EventTooLarge(ValueError):
    """The change's event would not fit in one request to the event handler: nothing is written."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the incident would be too large to deliver: its event is {size} bytes, at most {MAX_EVENT_BYTES}"
        )
        self.size = size


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


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One change as the audit log and the outbox keep it: its CloudEvent, built and encoded once."""

    id: str
    version: int
    type: str
    actor: str
    request_id: str | None
    comment: str | None
    payload: bytes
    at: datetime


@dataclass(frozen=True, slots=True)
class EventRecorder:
    """Builds the events of an incident's recorded changes; the repository calls it once the incident has
    its id, inside the transaction that stores them."""

    origin: Origin

    def events(self, incident: Incident) -> list[RecordedEvent]:
        assert incident.id is not None and incident.created_at is not None
        recorded = []
        for change in incident.changes:
            event = cloud_event(incident.id, incident.created_at, change, self.origin)
            payload = encode_event(event)
            if len(payload) > MAX_EVENT_BYTES:
                raise EventTooLarge(len(payload))
            recorded.append(
                RecordedEvent(
                    event.id,
                    change.version,
                    change.type.value,
                    self.origin.actor[:128],
                    self.origin.request_id,
                    change.comment,
                    payload,
                    change.at,
                )
            )
        return recorded
