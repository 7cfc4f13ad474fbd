"""Request and response bodies of the webhook routes."""

from __future__ import annotations

from datetime import datetime

import msgspec

from services.api.web.bodies import Body, EventSubject
from shared.webhooks import Attempt, Endpoint


class CreateWebhook(Body):
    url: str
    events: list[EventSubject]
    description: str = ""


class UpdateWebhook(Body, omit_defaults=True):
    url: str | msgspec.UnsetType = msgspec.UNSET
    events: list[EventSubject] | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    """true enables an endpoint again (after a 410, for example); deliveries resume where they stopped."""


class SecretInfo(msgspec.Struct, omit_defaults=True):
    """A signing secret, without its value."""

    created_at: datetime
    expires_at: datetime | None = None


class WebhookView(msgspec.Struct, omit_defaults=True):
    id: str
    url: str
    events: list[str]
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime
    secrets: list[SecretInfo]
    disabled_reason: str | None = None

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookView:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            events=endpoint.events,
            enabled=endpoint.enabled,
            description=endpoint.description,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
            secrets=[SecretInfo(created_at=s.created_at, expires_at=s.expires_at) for s in endpoint.secrets],
            disabled_reason=endpoint.disabled_reason,
        )


class WebhookCreated(msgspec.Struct, omit_defaults=True):
    """As `GET` shows it, plus the secret: the only time it is shown (and on rotate)."""

    id: str
    url: str
    events: list[str]
    enabled: bool
    description: str
    created_at: datetime
    secret: str

    @classmethod
    def of(cls, endpoint: Endpoint, secret: str) -> WebhookCreated:
        view = WebhookView.of(endpoint)
        return cls(view.id, view.url, view.events, view.enabled, view.description, view.created_at, secret)


class WebhookList(msgspec.Struct):
    items: list[WebhookView]


class RotatedSecret(msgspec.Struct):
    secret: str
    previous_expires_at: datetime | None
    """Until then the previous secret keeps signing beside the new one."""


class DeliveryLog(msgspec.Struct):
    items: list[Attempt]
    """Newest first."""
