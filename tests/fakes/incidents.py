"""Builds the CloudEvents the API would emit for a sequence of incident changes, and publishes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from nats.js import JetStreamContext

from shared.events import (
    MSG_ID_HEADER,
    CloudEvent,
    EventData,
    EventType,
    IncidentSnapshot,
    encode_event,
    new_event_id,
    utcnow,
)


@dataclass
class Incident:
    id: int
    message: str
    status: str = "unresolved"
    acknowledged: str = "no"
    comments: list[str] = field(default_factory=list)
    version: int = 1
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    severity: str | None = None
    source: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    dedup_key: str | None = None

    def snapshot(self) -> IncidentSnapshot:
        return IncidentSnapshot(
            id=self.id,
            status=self.status,
            acknowledged=self.acknowledged,
            message=self.message,
            comments=list(self.comments),
            version=self.version,
            created_at=self.created_at,
            updated_at=self.updated_at,
            severity=self.severity,
            source=self.source,
            labels=dict(self.labels),
            dedup_key=self.dedup_key,
        )


class IncidentFeed:
    """What the API does to incidents, minus the database: each change returns its event."""

    def __init__(self, first_id: int = 1) -> None:
        self.incidents: dict[int, Incident] = {}
        self._next_id = first_id

    def _event(self, incident: Incident, kind: EventType, comment: str | None = None) -> CloudEvent:
        return CloudEvent(
            id=new_event_id(),
            type=kind.cloud_type,
            subject=str(incident.id),
            time=utcnow(),
            incidentversion=incident.version,
            data=EventData(incident=incident.snapshot(), comment=comment),
        )

    def _change(self, incident_id: int) -> Incident:
        incident = self.incidents[incident_id]
        incident.version += 1
        incident.updated_at = utcnow()
        return incident

    def create(
        self,
        message: str,
        *,
        severity: str | None = None,
        source: str | None = None,
        labels: dict[str, str] | None = None,
        dedup_key: str | None = None,
    ) -> CloudEvent:
        incident = Incident(
            self._next_id, message, severity=severity, source=source, labels=labels or {}, dedup_key=dedup_key
        )
        self._next_id += 1
        self.incidents[incident.id] = incident
        return self._event(incident, EventType.CREATED)

    def acknowledge(self, incident_id: int) -> CloudEvent:
        incident = self._change(incident_id)
        incident.acknowledged = "yes"
        return self._event(incident, EventType.ACKNOWLEDGED)

    def unacknowledge(self, incident_id: int) -> CloudEvent:
        incident = self._change(incident_id)
        incident.acknowledged = "no"
        return self._event(incident, EventType.UNACKNOWLEDGED)

    def comment(self, incident_id: int, text: str) -> CloudEvent:
        incident = self._change(incident_id)
        incident.comments.append(text)
        return self._event(incident, EventType.COMMENTED, comment=text)

    def resolve(self, incident_id: int) -> CloudEvent:
        incident = self._change(incident_id)
        incident.status = "resolved"
        return self._event(incident, EventType.RESOLVED)

    def reopen(self, incident_id: int) -> CloudEvent:
        incident = self._change(incident_id)
        incident.status = "unresolved"
        return self._event(incident, EventType.REOPENED)

    def edit(self, incident_id: int, message: str) -> CloudEvent:
        incident = self._change(incident_id)
        incident.message = message
        return self._event(incident, EventType.UPDATED)

    def set_alert(self, incident_id: int, *, severity: str | None, labels: dict[str, str] | None = None) -> CloudEvent:
        """A PUT of alert fields: one `updated` event, the message unchanged."""
        incident = self._change(incident_id)
        incident.severity = severity
        incident.labels = labels or {}
        return self._event(incident, EventType.UPDATED)

    def delete(self, incident_id: int) -> CloudEvent:
        incident = self._change(incident_id)
        return self._event(incident, EventType.DELETED)


async def publish(js: JetStreamContext, event: CloudEvent, headers: Mapping[str, str] | None = None) -> int:
    """Publish like the event handler does; returns the stream sequence."""
    all_headers = {MSG_ID_HEADER: event.id, **(headers or {})}
    ack = await js.publish(event.nats_subject, encode_event(event), headers=all_headers)
    return int(ack.seq)
