"""Outbound webhook endpoints: register, change, rotate the secret, read the delivery log, redeliver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.openapi.spec import Schema
from litestar.params import Parameter

from services.api.web.bodies import StatusResponse
from services.api.web.errors import BadRequest, error_response
from services.api.web.openapi import ERRORS
from services.api.webhooks.schemas import (
    CreateWebhook,
    DeliveryLog,
    RotatedSecret,
    UpdateWebhook,
    WebhookCreated,
    WebhookList,
    WebhookView,
)
from services.api.webhooks.store import (
    EventNotFound,
    TooManyWebhooks,
    WebhookConflict,
    WebhookNotFound,
    WebhookStore,
    WebhooksUnavailable,
)
from shared.egress import BadUrl, TargetRefused
from shared.webhooks import (
    ENDPOINT_ID,
    MAX_DESCRIPTION_LENGTH,
    MAX_URL_LENGTH,
    Attempt,
    Endpoint,
    EndpointSecret,
    new_endpoint_id,
    new_secret,
)

URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s#]*)?$"
WebhookId = Annotated[str, Parameter(pattern=ENDPOINT_ID.pattern, description="The webhook's id")]
EventId = Annotated[str, Parameter(pattern=r"^[0-9A-Za-z-]{1,64}$", description="An event id (the webhook-id)")]


def _checked_events(events: list[str]) -> list[str]:
    if not events:
        raise BadRequest("events must name at least one event type")
    return sorted(set(events))


def _checked_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise BadRequest(f"description is longer than {MAX_DESCRIPTION_LENGTH} characters")
    return description


def _bad_target(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return error_response(400, f"url refused: {exc}")


def _not_found(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return error_response(404, "event not found" if isinstance(exc, EventNotFound) else "webhook not found")


def _unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return error_response(503, f"webhooks unavailable, try again later: {exc}", {"Retry-After": "1"})


def _conflict(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return error_response(409, str(exc))


def document_webhook_bodies(schemas: dict[str, Any]) -> None:
    """Write the bodies' rules into the OpenAPI schema. Whether a URL is accepted also depends on
    what its host resolves to (the SSRF guard), which no schema can say: that is a documented 400."""
    for name in ("CreateWebhook", "UpdateWebhook"):
        schema = schemas.get(name)
        if not isinstance(schema, Schema):
            continue
        props = schema.properties or {}
        if isinstance(url := props.get("url"), Schema):
            url.pattern, url.max_length = URL_PATTERN, MAX_URL_LENGTH
        if isinstance(events := props.get("events"), Schema):
            events.min_items = 1
        if isinstance(description := props.get("description"), Schema):
            description.max_length = MAX_DESCRIPTION_LENGTH
        if name == "UpdateWebhook":
            schema.min_properties = 1


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]
    exception_handlers = {
        BadUrl: _bad_target,
        TargetRefused: _bad_target,
        WebhookNotFound: _not_found,
        EventNotFound: _not_found,
        WebhooksUnavailable: _unavailable,
        WebhookConflict: _conflict,
        TooManyWebhooks: _conflict,
    }

    @post("/", status_code=201, summary="Register an endpoint; the answer holds its signing secret", responses=ERRORS)
    async def create(self, data: CreateWebhook, webhooks: WebhookStore) -> WebhookCreated:
        events = _checked_events(list(data.events))
        description = _checked_description(data.description)
        await webhooks.check_url(data.url)
        now = datetime.now(UTC)
        secret = new_secret()
        endpoint = Endpoint(
            id=new_endpoint_id(),
            url=data.url,
            events=events,
            description=description,
            secrets=[EndpointSecret(value=secret, created_at=now)],
            created_at=now,
            updated_at=now,
        )
        await webhooks.create(endpoint)
        return WebhookCreated.of(endpoint, secret)

    @get("/", summary="Every registered endpoint (without secrets)", responses=ERRORS)
    async def list_webhooks(self, webhooks: WebhookStore) -> WebhookList:
        return WebhookList(items=[WebhookView.of(e) for e in await webhooks.list_all()])

    @get("/{webhook_id:str}", summary="One endpoint (without its secrets)", responses=ERRORS)
    async def read(self, webhook_id: WebhookId, webhooks: WebhookStore) -> WebhookView:
        return WebhookView.of(await webhooks.get(webhook_id))

    @patch("/{webhook_id:str}", summary="Change url, events, description, or enable/disable", responses=ERRORS)
    async def update(self, webhook_id: WebhookId, data: UpdateWebhook, webhooks: WebhookStore) -> WebhookView:
        changes: dict[str, Any] = {}
        if isinstance(data.url, str):
            await webhooks.check_url(data.url)
            changes["url"] = data.url
        if isinstance(data.events, list):
            changes["events"] = _checked_events(list(data.events))
        if isinstance(data.description, str):
            changes["description"] = _checked_description(data.description)
        if isinstance(data.enabled, bool):
            changes["enabled"] = data.enabled
            changes["disabled_reason"] = None if data.enabled else "disabled by a user"
        if not changes:
            raise BadRequest("give at least one of url, events, description, enabled")

        def apply(endpoint: Endpoint) -> Endpoint:
            return msgspec.structs.replace(endpoint, **changes, updated_at=datetime.now(UTC))

        return WebhookView.of(await webhooks.change(webhook_id, apply))

    @delete("/{webhook_id:str}", status_code=200, summary="Delete an endpoint and its consumer", responses=ERRORS)
    async def remove(self, webhook_id: WebhookId, webhooks: WebhookStore) -> StatusResponse:
        await webhooks.delete(webhook_id)
        return StatusResponse(status="WEBHOOK DELETED")

    @post(
        "/{webhook_id:str}/rotate",
        status_code=200,
        summary="A new signing secret; the previous one keeps signing beside it for the overlap period",
        responses=ERRORS,
    )
    async def rotate(self, webhook_id: WebhookId, webhooks: WebhookStore) -> RotatedSecret:
        secret = new_secret()
        endpoint = await webhooks.rotate(webhook_id, secret)
        previous = [s.expires_at for s in endpoint.secrets if s.value != secret and s.expires_at is not None]
        return RotatedSecret(secret=secret, previous_expires_at=max(previous) if previous else None)

    @get("/{webhook_id:str}/deliveries", summary="Recent delivery attempts, newest first", responses=ERRORS)
    async def deliveries(
        self,
        webhook_id: WebhookId,
        webhooks: WebhookStore,
        limit: int = Parameter(default=100, ge=1, le=200),
    ) -> DeliveryLog:
        return DeliveryLog(items=await webhooks.deliveries(webhook_id, limit))

    @post(
        "/{webhook_id:str}/deliveries/{event_id:str}/redeliver",
        status_code=200,
        summary="Send one event to the endpoint again, now; answers with the attempt",
        responses=ERRORS,
    )
    async def redeliver(self, webhook_id: WebhookId, event_id: EventId, webhooks: WebhookStore) -> Attempt:
        return await webhooks.redeliver(webhook_id, event_id)
