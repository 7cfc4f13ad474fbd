"""`POST /integrations/slack/interactions`, `/integrations/jira/webhook`, `/integrations/zendesk/webhook`.

Each checks the vendor's signature on the raw body, then acts like the API's own routes with an outside
actor. Nothing is answered 5xx: the database being down is 429 with Retry-After (vendors retry on it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import structlog
from litestar import Request, Response, post

from services.api.delivery.eventhandler_client import EventHandlerUnavailable
from services.api.integrations import payloads, signatures
from services.api.integrations.metrics import IntegrationMetrics
from services.api.integrations.service import (
    IdentityUnavailable,
    JiraIdentity,
    Outcome,
    OutsideActions,
    Target,
    delivery_key,
)
from services.api.integrations.settings import TwoWaySettings
from services.api.storage.db import UNAVAILABLE_ERRORS
from services.api.storage.repository import IdempotencyMismatch, VersionConflict
from services.api.web import params
from services.api.web.errors import error_response, handle_any
from shared.config import Secret
from shared.twoway import JIRA_DELIVERY_HEADER, ZENDESK_INVOCATION_HEADER, outside_actor

log = structlog.get_logger(__name__)

SLACK_ANSWER_SECONDS = 2.5
"""Slack wants an answer within 3 s; a write still running then finishes after the answer."""
RETRY_AFTER_SECONDS = "5"
RETRY_LATER: tuple[type[BaseException], ...] = (
    *UNAVAILABLE_ERRORS,
    EventHandlerUnavailable,
    VersionConflict,
    IdentityUnavailable,
)
REFUSED: tuple[type[BaseException], ...] = (
    signatures.BadSignature,
    payloads.Malformed,
    IdempotencyMismatch,
    *RETRY_LATER,
)
JIRA_STATES = {"done": Target.RESOLVED}
ZENDESK_STATES = {
    "solved": Target.RESOLVED,
    "closed": Target.RESOLVED,
    "open": Target.REOPENED,
    "new": Target.REOPENED,
    "pending": Target.ACKNOWLEDGED,
}
ZENDESK_IGNORED = frozenset({"on-hold", "hold", "on_hold"})


@dataclass
class TwoWay:
    settings: TwoWaySettings
    actions: OutsideActions
    identity: JiraIdentity
    metrics: IntegrationMetrics
    in_flight: set[asyncio.Task[Outcome]] = dataclasses.field(default_factory=set)


def _answer(two_way: TwoWay, vendor: str, outcome: str, code: int = 200) -> Response[Any]:
    two_way.metrics.requests.inc(vendor=vendor, outcome=outcome)
    return Response({"status": "ACCEPTED", "outcome": outcome}, status_code=code, media_type="application/json")


def _refused(two_way: TwoWay, vendor: str, exc: BaseException) -> Response[Any]:
    """Bad signature → 401, malformed body → 400, storage unavailable → 429 (never 5xx)."""
    if isinstance(exc, signatures.BadSignature):
        two_way.metrics.bad_signatures.inc(vendor=vendor)
        log.warning("outside request refused: bad signature", vendor=vendor, reason=str(exc))
        return error_response(401, str(exc))
    if isinstance(exc, payloads.Malformed | IdempotencyMismatch):
        two_way.metrics.requests.inc(vendor=vendor, outcome="invalid")
        return error_response(400, str(exc))
    two_way.metrics.requests.inc(vendor=vendor, outcome="retry_later")
    log.warning("outside request not applied, vendor will retry", vendor=vendor, error=type(exc).__name__)
    return error_response(
        429, "temporarily unable to record the change, try again later", {"Retry-After": RETRY_AFTER_SECONDS}
    )


def never_5xx(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The API's own error answer, except that what would be a 5xx is "retry later" for the vendor."""
    answer = handle_any(request, exc)
    if (answer.status_code or 500) < 500:
        return answer
    log.error("outside request failed; the vendor will retry", path=request.url.path, error=type(exc).__name__)
    return error_response(
        429, "temporarily unable to record the change, try again later", {"Retry-After": RETRY_AFTER_SECONDS}
    )


def _secret(secret: Secret | None) -> bytes | None:
    return secret.reveal().encode() if secret is not None else None


def _not_configured(vendor: str) -> Response[Any]:
    return error_response(404, f"{vendor} two-way sync is not configured")


@post(
    "/integrations/slack/interactions",
    tags=["two-way sync"],
    include_in_schema=False,
    status_code=200,
    exception_handlers={Exception: never_5xx},
)
async def slack_interactions(request: Request[Any, Any, Any], two_way: TwoWay) -> Response[Any]:
    """A click on one of the incident message's buttons (Slack's interactivity request)."""
    secret = _secret(two_way.settings.slack_signing_secret)
    if secret is None:
        return _not_configured("slack")
    body = await request.body()
    try:
        signatures.verify_slack(secret, request.headers, body, time.time())
        click = payloads.slack_click(body)
    except (signatures.BadSignature, payloads.Malformed) as exc:
        return _refused(two_way, "slack", exc)
    if click is None:
        return _answer(two_way, "slack", "ignored")
    structlog.contextvars.bind_contextvars(incident_id=click.incident_id)
    origin = dataclasses.replace(params.origin(request), actor=outside_actor("slack", click.user))
    key = delivery_key("slack", f"{click.user_id}:{click.action_ts}")
    write = asyncio.ensure_future(
        two_way.actions.click(click.incident_id, click.drawn_version, click.action, origin, key)
    )
    two_way.in_flight.add(write)
    write.add_done_callback(_finished(two_way, "slack"))
    try:
        outcome = await asyncio.wait_for(asyncio.shield(write), SLACK_ANSWER_SECONDS)
    except TimeoutError:
        log.warning("slack click still being written; answered before Slack's 3 s", incident_id=click.incident_id)
        return Response({"status": "ACCEPTED", "outcome": "pending"}, media_type="application/json")
    except RETRY_LATER as exc:
        return _refused(two_way, "slack", exc)
    return Response({"status": "ACCEPTED", "outcome": outcome.value}, media_type="application/json")


def _finished(two_way: TwoWay, vendor: str) -> Any:
    def done(task: asyncio.Task[Outcome]) -> None:
        two_way.in_flight.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            two_way.metrics.requests.inc(vendor=vendor, outcome=task.result().value)
        elif not isinstance(exc, RETRY_LATER):
            log.error("outside action failed", vendor=vendor, error=type(exc).__name__, exc_info=exc)

    return done


@post(
    "/integrations/jira/webhook",
    tags=["two-way sync"],
    include_in_schema=False,
    status_code=200,
    exception_handlers={Exception: never_5xx},
)
async def jira_webhook(request: Request[Any, Any, Any], two_way: TwoWay) -> Response[Any]:
    """A Jira Cloud admin webhook (`jira:issue_updated`): a status moving into or out of the `done` category."""
    secret = _secret(two_way.settings.jira_webhook_secret)
    if secret is None:
        return _not_configured("jira")
    body = await request.body()
    try:
        signatures.verify_jira(secret, request.headers, body)
        change = payloads.jira_status_change(body)
        if change is None:
            return _answer(two_way, "jira", "ignored", 202)
        if change.incident_id is None:
            return _answer(two_way, "jira", "unknown", 202)
        structlog.contextvars.bind_contextvars(incident_id=change.incident_id)
        if change.actor_id and change.actor_id == await two_way.identity.own_account():
            return _answer(two_way, "jira", "echo")
        target = JIRA_STATES.get(change.status, Target.REOPENED)
        origin = dataclasses.replace(params.origin(request), actor=outside_actor("jira", change.actor_name))
        key = delivery_key("jira", request.headers.get(JIRA_DELIVERY_HEADER))
        outcome = await two_way.actions.set_state(change.incident_id, target, origin, key)
    except REFUSED as exc:
        return _refused(two_way, "jira", exc)
    return _answer(two_way, "jira", outcome.value, 202 if outcome is Outcome.UNKNOWN else 200)


@post(
    "/integrations/zendesk/webhook",
    tags=["two-way sync"],
    include_in_schema=False,
    status_code=200,
    exception_handlers={Exception: never_5xx},
)
async def zendesk_webhook(request: Request[Any, Any, Any], two_way: TwoWay) -> Response[Any]:
    """A Zendesk trigger's webhook: solved/closed resolves, open/new reopens, pending acknowledges."""
    secret = _secret(two_way.settings.zendesk_webhook_secret)
    if secret is None:
        return _not_configured("zendesk")
    body = await request.body()
    try:
        signatures.verify_zendesk(secret, request.headers, body, time.time())
        change = payloads.zendesk_status_change(body)
        if change.incident_id is None:
            return _answer(two_way, "zendesk", "unknown", 202)
        structlog.contextvars.bind_contextvars(incident_id=change.incident_id)
        own = (two_way.settings.zendesk_email or "").casefold()
        if own and change.actor_id.casefold() == own:
            return _answer(two_way, "zendesk", "echo")
        if change.status in ZENDESK_IGNORED:
            return _answer(two_way, "zendesk", "ignored")
        target = ZENDESK_STATES.get(change.status)
        if target is None:
            known = ", ".join([*ZENDESK_STATES, "on-hold"])
            raise payloads.Malformed(f"unknown status {change.status!r}: expected one of {known}")
        origin = dataclasses.replace(params.origin(request), actor=outside_actor("zendesk", change.actor_name))
        key = delivery_key("zendesk", request.headers.get(ZENDESK_INVOCATION_HEADER))
        outcome = await two_way.actions.set_state(change.incident_id, target, origin, key)
    except REFUSED as exc:
        return _refused(two_way, "zendesk", exc)
    return _answer(two_way, "zendesk", outcome.value, 202 if outcome is Outcome.UNKNOWN else 200)


ROUTES = [slack_interactions, jira_webhook, zendesk_webhook]
PATHS = frozenset({"/integrations/slack/interactions", "/integrations/jira/webhook", "/integrations/zendesk/webhook"})
"""Signed by the vendor instead of a bearer token."""
