"""`POST /integrations/slack/interactions`, `/integrations/jira/webhook`, `/integrations/zendesk/webhook`.

Each checks the vendor's signature on the raw body, then acts like the API's own routes with an outside
actor. Nothing is answered 5xx: the database being down is 429 with Retry-After (vendors retry on it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
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
from shared import logcontext
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
SLACK_REFUSED: tuple[type[BaseException], ...] = (signatures.BadSignature, payloads.Malformed, *RETRY_LATER)
"""A click's idempotency mismatch is left to the API's own error answer (409)."""
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


signed_route = functools.partial(
    post, tags=["two-way sync"], include_in_schema=False, status_code=200, exception_handlers={Exception: never_5xx}
)
"""A vendor's signed route: not in the API's schema, and never answered 5xx."""

Verify = Callable[[bytes, Mapping[str, str], bytes], None]
"""Checks the vendor's signature of a raw body with the shared secret; raises BadSignature."""


def _verify_slack(secret: bytes, headers: Mapping[str, str], body: bytes) -> None:
    signatures.verify_slack(secret, headers, body, time.time())


def _verify_zendesk(secret: bytes, headers: Mapping[str, str], body: bytes) -> None:
    signatures.verify_zendesk(secret, headers, body, time.time())


async def _signed(
    request: Request[Any, Any, Any],
    two_way: TwoWay,
    vendor: str,
    secret: Secret | None,
    verify: Verify,
    act: Callable[[bytes], Awaitable[Response[Any]]],
    refused: tuple[type[BaseException], ...] = REFUSED,
) -> Response[Any]:
    """A vendor's signed request: 404 unless configured, then the signature, then `act` on the raw body.

    What `act` raises among `refused` is answered 4xx (never 5xx); anything else reaches `never_5xx`.
    """
    key = _secret(secret)
    if key is None:
        return _not_configured(vendor)
    body = await request.body()
    try:
        verify(key, request.headers, body)
        return await act(body)
    except refused as exc:
        return _refused(two_way, vendor, exc)


async def _set_state(
    request: Request[Any, Any, Any],
    two_way: TwoWay,
    vendor: str,
    incident_id: int,
    actor_name: str,
    target: Target,
    delivery: str | None,
) -> Response[Any]:
    """Applies a status change made in the vendor's tool, acting as the person who made it."""
    origin = dataclasses.replace(params.origin(request), actor=outside_actor(vendor, actor_name))
    key = delivery_key(vendor, delivery)
    outcome = await two_way.actions.set_state(incident_id, target, origin, key)
    return _answer(two_way, vendor, outcome.value, 202 if outcome is Outcome.UNKNOWN else 200)


@signed_route("/integrations/slack/interactions")
async def slack_interactions(request: Request[Any, Any, Any], two_way: TwoWay) -> Response[Any]:
    """A click on one of the incident message's buttons (Slack's interactivity request)."""

    async def act(body: bytes) -> Response[Any]:
        click = payloads.slack_click(body)
        if click is None:
            return _answer(two_way, "slack", "ignored")
        logcontext.bind(incident_id=click.incident_id)
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
        return Response({"status": "ACCEPTED", "outcome": outcome.value}, media_type="application/json")

    return await _signed(
        request, two_way, "slack", two_way.settings.slack_signing_secret, _verify_slack, act, SLACK_REFUSED
    )


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


@signed_route("/integrations/jira/webhook")
async def jira_webhook(request: Request[Any, Any, Any], two_way: TwoWay) -> Response[Any]:
    """A Jira Cloud admin webhook (`jira:issue_updated`): a status moving into or out of the `done` category."""

    async def act(body: bytes) -> Response[Any]:
        change = payloads.jira_status_change(body)
        if change is None:
            return _answer(two_way, "jira", "ignored", 202)
        if change.incident_id is None:
            return _answer(two_way, "jira", "unknown", 202)
        logcontext.bind(incident_id=change.incident_id)
        if change.actor_id and change.actor_id == await two_way.identity.own_account():
            return _answer(two_way, "jira", "echo")
        target = JIRA_STATES.get(change.status, Target.REOPENED)
        delivery = request.headers.get(JIRA_DELIVERY_HEADER)
        return await _set_state(request, two_way, "jira", change.incident_id, change.actor_name, target, delivery)

    return await _signed(request, two_way, "jira", two_way.settings.jira_webhook_secret, signatures.verify_jira, act)


@signed_route("/integrations/zendesk/webhook")
async def zendesk_webhook(request: Request[Any, Any, Any], two_way: TwoWay) -> Response[Any]:
    """A Zendesk trigger's webhook: solved/closed resolves, open/new reopens, pending acknowledges."""

    async def act(body: bytes) -> Response[Any]:
        change = payloads.zendesk_status_change(body)
        if change.incident_id is None:
            return _answer(two_way, "zendesk", "unknown", 202)
        logcontext.bind(incident_id=change.incident_id)
        own = (two_way.settings.zendesk_email or "").casefold()
        if own and change.actor_id.casefold() == own:
            return _answer(two_way, "zendesk", "echo")
        if change.status in ZENDESK_IGNORED:
            return _answer(two_way, "zendesk", "ignored")
        target = ZENDESK_STATES.get(change.status)
        if target is None:
            known = ", ".join([*ZENDESK_STATES, "on-hold"])
            raise payloads.Malformed(f"unknown status {change.status!r}: expected one of {known}")
        delivery = request.headers.get(ZENDESK_INVOCATION_HEADER)
        return await _set_state(request, two_way, "zendesk", change.incident_id, change.actor_name, target, delivery)

    return await _signed(request, two_way, "zendesk", two_way.settings.zendesk_webhook_secret, _verify_zendesk, act)


ROUTES = [slack_interactions, jira_webhook, zendesk_webhook]
PATHS = frozenset({"/integrations/slack/interactions", "/integrations/jira/webhook", "/integrations/zendesk/webhook"})
"""Signed by the vendor instead of a bearer token."""
