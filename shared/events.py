"""The cross-service event contract: CloudEvents 1.0 envelopes on JetStream subjects `incident.<type>`."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

import msgspec

STREAM = "INCIDENTS"
SUBJECT_PREFIX = "incident."
SOURCE = "/incidents/api"
MSG_ID_HEADER = "Nats-Msg-Id"
REDRIVE_HEADER = "Incidents-Redrive-For"
REQUEST_ID_HEADER = "Incidents-Request-Id"
TRACEPARENT_HEADER = "traceparent"


class EventType(enum.StrEnum):
    """Past-tense event types, in the order one action emits them."""

    CREATED = "created"
    UPDATED = "updated"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    COMMENTED = "commented"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    DELETED = "deleted"

    @property
    def subject(self) -> str:
        return SUBJECT_PREFIX + self.value

    @property
    def cloud_type(self) -> str:
        """The CloudEvents `type`, equal to the subject."""
        return SUBJECT_PREFIX + self.value

    @classmethod
    def from_subject(cls, subject: str) -> EventType:
        found = _BY_SUBJECT.get(subject)  # read for every event a worker handles: a dict, not Enum's lookup
        if found is not None:
            return found
        if not subject.startswith(SUBJECT_PREFIX):
            raise ValueError(f"not an incident subject: {subject!r}")
        return cls(subject[len(SUBJECT_PREFIX) :])


_BY_SUBJECT = {t.subject: t for t in EventType}
ALL_SUBJECTS = tuple(t.subject for t in EventType)


class IncidentSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The incident as `GET /incident/{id}` shows it."""

    id: int
    status: str
    acknowledged: str
    message: str
    comments: list[str]
    version: int
    created_at: datetime
    updated_at: datetime
    # Alert fields; defaults so that events stored before they existed still decode.
    severity: str | None = None
    """critical, error, warning or info."""
    source: str | None = None
    labels: dict[str, str] = {}
    dedup_key: str | None = None


class EventData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    incident: IncidentSnapshot
    comment: str | None = None


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A CloudEvents 1.0 JSON envelope with the `incidentversion` extension attribute."""

    # Factories, not plain defaults, so that omit_defaults still writes these required attributes.
    specversion: str = msgspec.field(default_factory=lambda: "1.0")
    id: str
    source: str = msgspec.field(default_factory=lambda: SOURCE)
    type: str
    subject: str
    time: datetime
    datacontenttype: str = msgspec.field(default_factory=lambda: "application/json")
    incidentversion: int
    data: EventData
    # Extension attributes for correlation; absent when unknown.
    requestid: str | None = None
    traceparent: str | None = None
    actor: str | None = None

    @property
    def event_type(self) -> EventType:
        return EventType.from_subject(self.type)

    @property
    def incident_id(self) -> int:
        return self.data.incident.id

    @property
    def nats_subject(self) -> str:
        return self.type


def new_event_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CloudEvent)


def encode_event(event: CloudEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(raw: bytes) -> CloudEvent:
    """Decode and validate an event; raises msgspec.ValidationError/DecodeError on bad input."""
    event = _decoder.decode(raw)
    EventType.from_subject(event.type)
    if event.subject != str(event.data.incident.id):
        raise msgspec.ValidationError("subject does not match data.incident.id")
    if event.incidentversion < 1:
        raise msgspec.ValidationError("incidentversion must be >= 1")
    return event
