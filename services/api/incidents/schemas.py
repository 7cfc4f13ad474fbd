"""Request and response bodies of the HTTP API (msgspec structs; OpenAPI is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from services.api.incidents.domain import (
    KEEP,
    Acknowledged,
    AlertFields,
    AlertUpdate,
    Incident,
    IncidentUpdate,
    InvalidInput,
    Severity,
    Status,
)
from services.api.storage.repository import Activity
from services.api.web.bodies import Body

# The domain checks text (not blank, not too long); app.py writes the same rules into the OpenAPI schema.
# No msgspec.Meta here: Annotated Meta types crash msgspec 0.22 at interpreter exit (msgspec#717).
Message = str
CommentText = str
Comments = str | list[str]
SeverityName = Literal["critical", "error", "warning", "info"]
Labels = dict[str, str]


class CreateIncident(Body):
    message: Message
    severity: SeverityName | None = None
    source: str | None = None
    labels: Labels | None = None
    dedup_key: str | None = None
    """At most one open incident has a given dedup_key (409 otherwise)."""

    def alert_fields(self) -> AlertFields:
        return AlertFields.of(
            Severity(self.severity) if self.severity else None, self.source, self.labels, self.dedup_key
        )


class UpdateIncident(Body, omit_defaults=True):
    message: Message | msgspec.UnsetType = msgspec.UNSET
    acknowledged: Literal["yes", "no"] | msgspec.UnsetType = msgspec.UNSET
    status: Literal["resolved", "unresolved"] | msgspec.UnsetType = msgspec.UNSET
    comments: Comments | msgspec.UnsetType = msgspec.UNSET
    comment: Comments | msgspec.UnsetType = msgspec.UNSET
    """A synonym of `comments`."""
    severity: SeverityName | msgspec.UnsetType | None = msgspec.UNSET
    """null clears it."""
    source: str | msgspec.UnsetType | None = msgspec.UNSET
    labels: Labels | msgspec.UnsetType | None = msgspec.UNSET
    """Replaces all labels; null or {} clears them."""
    dedup_key: str | msgspec.UnsetType | None = msgspec.UNSET

    def to_domain(self) -> IncidentUpdate:
        comments: list[str] = []
        for value in (self.comments, self.comment):
            if isinstance(value, str):
                comments.append(value)
            elif isinstance(value, list):
                if not value:
                    raise InvalidInput("comments must not be an empty list")
                comments.extend(value)
        return IncidentUpdate(
            message=self.message if isinstance(self.message, str) else None,
            acknowledged=Acknowledged(self.acknowledged) if isinstance(self.acknowledged, str) else None,
            status=Status(self.status) if isinstance(self.status, str) else None,
            comments=tuple(comments),
            alert=AlertUpdate(
                severity=KEEP if self.severity is msgspec.UNSET else Severity(self.severity) if self.severity else None,
                source=KEEP if self.source is msgspec.UNSET else self.source,
                labels=KEEP if self.labels is msgspec.UNSET else self.labels,
                dedup_key=KEEP if self.dedup_key is msgspec.UNSET else self.dedup_key,
            ),
        )


class AddComment(Body):
    comment: CommentText


class Created(msgspec.Struct):
    status: str
    id: str = msgspec.field(name="ID")


class Link(msgspec.Struct):
    system: str
    id: str
    url: str | None = None


class LastChange(msgspec.Struct):
    type: str
    """incident.created, incident.acknowledged, …"""
    actor: str
    time: datetime


class ActionNote(Body):
    """The optional body of acknowledge, unacknowledge, resolve and reopen: a note added as a comment."""

    comment: CommentText | None = None


class IncidentView(msgspec.Struct, omit_defaults=True):
    status: str
    acknowledged: str
    message: str
    comments: list[str]
    id: int
    version: int
    created_at: datetime
    updated_at: datetime
    severity: SeverityName | None
    source: str | None
    labels: Labels
    dedup_key: str | None
    alert_count: int = 0
    """Alerts received for this incident (triggers, notifications), counted without events."""
    last_alert_at: datetime | None = None
    links: list[Link] = []
    acknowledged_by: str | None = None
    """Who acknowledged it, while it is acknowledged."""
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    """When it was resolved, while it is resolved."""
    last_change: LastChange | None = None

    @classmethod
    def of(cls, incident: Incident, links: list[Link] | None = None, activity: Activity | None = None) -> IncidentView:
        assert incident.id is not None and incident.created_at and incident.updated_at
        done = activity or Activity()
        last = (
            LastChange(type=f"incident.{done.last_type}", actor=done.last_actor, time=done.last_at)
            if done.last_type and done.last_actor and done.last_at
            else None
        )
        return cls(
            status=incident.status.value,
            acknowledged=incident.acknowledged.value,
            message=incident.message,
            comments=list(incident.comments),
            id=incident.id,
            version=incident.version,
            created_at=incident.created_at,
            updated_at=incident.updated_at,
            severity=incident.alert.severity.value if incident.alert.severity else None,
            source=incident.alert.source,
            labels=incident.alert.label_map,
            dedup_key=incident.alert.dedup_key,
            alert_count=incident.alert_count,
            last_alert_at=incident.last_alert_at,
            links=links or [],
            acknowledged_by=done.acknowledged_by,
            acknowledged_at=done.acknowledged_at,
            resolved_at=done.resolved_at,
            last_change=last,
        )


class IncidentPage(msgspec.Struct):
    items: list[IncidentView]
    next_cursor: str | None


class TimelineItem(msgspec.Struct, omit_defaults=True):
    time: datetime
    type: str
    version: int
    actor: str
    event_id: str
    request_id: str | None = None
    comment: str | None = None


class Timeline(msgspec.Struct):
    incident_id: int
    items: list[TimelineItem]
