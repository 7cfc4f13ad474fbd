"""What the bodies of every route share: the strict base of request bodies, the plain answers, the event names."""

from __future__ import annotations

from typing import Literal

import msgspec


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are a 400, not silently ignored."""


EventSubject = Literal[
    "incident.created",
    "incident.updated",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.commented",
    "incident.resolved",
    "incident.reopened",
    "incident.deleted",
]


class StatusResponse(msgspec.Struct):
    status: str


class ErrorResponse(msgspec.Struct):
    status: str
    error: str


STRICT_BODIES = frozenset(
    {
        "ActionNote",
        "CreateIncident",
        "UpdateIncident",
        "AddComment",
        "SetSubscriptions",
        "CreateWebhook",
        "UpdateWebhook",
    }
)
ALERT_BODIES = frozenset({"Notification", "PagerDutyEvent"})
