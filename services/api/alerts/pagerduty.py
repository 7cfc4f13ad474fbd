"""PagerDuty Events API v2 bodies (`POST /v2/enqueue`) and what a trigger means for an incident."""

from __future__ import annotations

import hmac
import re
import uuid
from typing import Any, Literal

import msgspec

from services.api.incidents.domain import (
    MAX_DEDUP_KEY_LENGTH,
    MAX_LABEL_KEY_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS,
    MAX_SOURCE_LENGTH,
    NOT_BLANK,
    AlertFields,
    Severity,
)
from services.api.settings import IntegrationKey

_NOT_BLANK = re.compile(NOT_BLANK)  # compiled once: checked on every notification of a storm

MAX_SUMMARY_LENGTH = 1024  # PagerDuty's own limit on payload.summary


class PagerDutyPayload(msgspec.Struct, omit_defaults=True):
    summary: str
    """What is wrong; becomes the incident's message (at most 1024 characters)."""
    source: str
    """The affected system; becomes the incident's `source`."""
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = msgspec.field(default=None, name="class")
    custom_details: Any = None
    """An object (its entries become labels) or a string (label `details`)."""


class PagerDutyLink(msgspec.Struct):
    href: str
    text: str | None = None


class PagerDutyImage(msgspec.Struct):
    src: str
    href: str | None = None
    alt: str | None = None


class PagerDutyEvent(msgspec.Struct, omit_defaults=True):
    routing_key: str
    """An integration key from INTEGRATION_KEYS; it authenticates the event."""
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = None
    """Required for acknowledge and resolve; generated for a trigger without one."""
    payload: PagerDutyPayload | None = None
    """Required for trigger."""
    client: str | None = None
    client_url: str | None = None
    links: list[PagerDutyLink] | None = None
    images: list[PagerDutyImage] | None = None


class Accepted(msgspec.Struct):
    status: str
    message: str
    dedup_key: str


class InvalidEvent(msgspec.Struct):
    status: str
    message: str
    errors: list[str]


def invalid(*errors: str) -> InvalidEvent:
    return InvalidEvent(status="invalid event", message="Event object is invalid", errors=list(errors))


def accepted(dedup_key: str) -> Accepted:
    return Accepted(status="success", message="Event processed", dedup_key=dedup_key)


def problems(event: PagerDutyEvent) -> list[str]:
    """What PagerDuty would refuse beyond the types: missing payload, blank or oversized values."""
    errors = []
    if event.dedup_key is not None and not (
        _NOT_BLANK.search(event.dedup_key) and len(event.dedup_key) <= MAX_DEDUP_KEY_LENGTH
    ):
        errors.append(f"'dedup_key' must be 1 to {MAX_DEDUP_KEY_LENGTH} characters")
    if event.event_action != "trigger":
        if event.dedup_key is None:
            errors.append(f"'dedup_key' is required for event_action {event.event_action}")
        return errors
    payload = event.payload
    if payload is None:
        return [*errors, "'payload' is required for event_action trigger"]
    if not _NOT_BLANK.search(payload.summary):
        errors.append("'payload.summary' must not be blank")
    elif len(payload.summary) > MAX_SUMMARY_LENGTH:
        errors.append(f"'payload.summary' must be at most {MAX_SUMMARY_LENGTH} characters")
    if not _NOT_BLANK.search(payload.source[:MAX_SOURCE_LENGTH]):
        errors.append("'payload.source' must not be blank")
    return errors


def new_dedup_key() -> str:
    return uuid.uuid4().hex


def alert_fields(payload: PagerDutyPayload, dedup_key: str) -> AlertFields:
    labels = {k: v for k, v in (("component", payload.component), ("group", payload.group), ("class", payload.class_))}
    details = payload.custom_details
    if isinstance(details, dict):
        for key, value in details.items():
            labels[f"details.{key}"] = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    elif details is not None:
        labels["details"] = details if isinstance(details, str) else msgspec.json.encode(details).decode()
    present = [(key, value) for key, value in labels.items() if key and value is not None]  # before the cap
    kept = {key[:MAX_LABEL_KEY_LENGTH]: value[:MAX_LABEL_VALUE_LENGTH] for key, value in present[:MAX_LABELS]}
    return AlertFields.of(Severity(payload.severity), payload.source[:MAX_SOURCE_LENGTH], kept, dedup_key)


class RoutingKeys:
    """The integration keys `POST /v2/enqueue` accepts, compared in constant time."""

    def __init__(self, keys: tuple[IntegrationKey, ...]) -> None:
        self.keys = keys

    def integration(self, routing_key: str) -> str | None:
        presented = routing_key.encode()
        found = None
        for entry in self.keys:  # compare against every key: no early exit leaks which one matched
            if hmac.compare_digest(presented, entry.key.reveal().encode()):
                found = entry.name
        return found
