"""Alerts in: PagerDuty's Events API v2 (`POST /v2/enqueue`) and Alertmanager webhooks."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Request, Response, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from services.api.alerts import alertmanager, pagerduty
from services.api.alerts.service import AlertIntake, integration_owner
from services.api.incidents.domain import DomainError
from services.api.incidents.events import Origin
from services.api.settings import ALERTMANAGER_INTEGRATION
from services.api.web import params
from services.api.web.errors import TOO_DEEP, handle_any, handle_http, is_too_deep
from services.api.web.openapi import ERRORS

JSON = "application/json"
PD_RESPONSES: dict[int, ResponseSpec] = {
    400: ResponseSpec(
        pagerduty.InvalidEvent,
        description="Invalid event (PagerDuty's shape): bad JSON, wrong types, missing fields, unknown routing_key",
        generate_examples=False,
    ),
    **{code: spec for code, spec in ERRORS.items() if code in (409, 413, 503)},
}


def _invalid(*errors: str) -> Response[Any]:
    return Response(pagerduty.invalid(*errors), status_code=400, media_type=JSON)


def _pd_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    answer = handle_http(request, exc)
    if isinstance(exc, ValidationException) or answer.status_code == 400:
        detail = answer.content
        return _invalid(str(detail["error"]) if isinstance(detail, dict) else "invalid event")
    return answer


def _pd_domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    return _invalid(str(exc))


def _pd_recursion_error(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    return _invalid(TOO_DEEP) if is_too_deep(exc) else handle_any(request, exc)


@post(
    "/v2/enqueue",
    status_code=202,
    tags=["alerts"],
    summary="Send an alert event (PagerDuty Events API v2); authenticated by routing_key, not a bearer token",
    description=(
        "`trigger` opens an incident for the dedup_key (generated when missing), or counts the alert on the "
        "incident already open for it; `acknowledge` and `resolve` act on the open incident with that dedup_key."
    ),
    responses=PD_RESPONSES,
    exception_handlers={
        HTTPException: _pd_http_error,
        DomainError: _pd_domain_error,
        RecursionError: _pd_recursion_error,
    },
    security=[],
)
async def enqueue(
    request: Request[Any, Any, Any],
    data: pagerduty.PagerDutyEvent,
    intake: AlertIntake,
    routing_keys: pagerduty.RoutingKeys,
) -> Response[pagerduty.Accepted]:
    integration = routing_keys.integration(data.routing_key)
    if integration is None:
        return _invalid("unknown routing_key: it must be one of INTEGRATION_KEYS")
    errors = pagerduty.problems(data)
    if errors:
        return _invalid(*errors)
    accepted = await accept_event(data, integration, params.origin(request), intake)
    return Response(accepted, status_code=202, media_type=JSON)


async def accept_event(
    data: pagerduty.PagerDutyEvent, integration: str, sender: Origin, intake: AlertIntake
) -> pagerduty.Accepted:
    """An Events v2 event that passed its checks (routing_key, problems), applied as the integration."""
    origin = dataclasses.replace(sender, actor=integration)
    key = data.dedup_key or pagerduty.new_dedup_key()
    owner = integration_owner(integration)  # the key is this integration's: no other one can act on it
    if data.event_action == "trigger":
        assert data.payload is not None
        fields = pagerduty.alert_fields(data.payload, key)
        await intake.trigger(data.payload.summary, fields, origin, integration=integration, owner=owner)
    elif data.event_action == "acknowledge":
        await intake.act(owner, key, origin, lambda incident, now: incident.acknowledge(now))
    else:
        await intake.act(owner, key, origin, lambda incident, now: incident.resolve(now))
    return pagerduty.accepted(key)


@post(
    "/integrations/alertmanager",
    status_code=200,
    tags=["alerts"],
    summary="Receive a Prometheus Alertmanager webhook notification (payload version 4)",
    description=(
        "One incident per alert group (`groupKey`, the incident's dedup_key) while it fires; alerts joining or "
        "resolving within the group are added as one comment; the group's resolved notification resolves it."
    ),
    responses=ERRORS,
)
async def alertmanager_webhook(
    request: Request[Any, Any, Any], data: alertmanager.Notification, intake: AlertIntake
) -> alertmanager.NotificationResult:
    return await accept_notification(data, params.origin(request), intake)


async def accept_notification(
    data: alertmanager.Notification, sender: Origin, intake: AlertIntake
) -> alertmanager.NotificationResult:
    # Credited to the integration, with the token that sent it: "alertmanager:<token name>".
    origin = dataclasses.replace(sender, actor=f"{ALERTMANAGER_INTEGRATION}:{sender.actor}"[:128])
    outcome = await intake.notification(data, origin)
    key = alertmanager.dedup_key(data)
    incident_id = str(outcome.incident_id) if outcome.incident_id is not None else None
    if data.status == "resolved":
        status = "INCIDENT RESOLVED" if outcome.incident_id is not None else "NOTHING TO RESOLVE"
    else:
        status = "INCIDENT CREATED" if outcome.created else "ALERTS RECORDED"
    return alertmanager.NotificationResult(status=status, dedup_key=key, ID=incident_id)
