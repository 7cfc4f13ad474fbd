"""Liveness and readiness: ready means the database and NATS answer and the relay moves the outbox."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from services.api.delivery.eventhandler_client import NatsLink
from services.api.delivery.relay import OutboxRelay
from services.api.settings import ApiSettings
from services.api.storage.db import UNAVAILABLE_ERRORS, Db
from services.api.storage.outbox import OutboxStore
from services.api.web.openapi import ERRORS

MAX_PARKED_SHOWN = 20


@get("/health/live", tags=["health"], summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "live"}


@get(
    "/health/ready",
    tags=["health"],
    summary="The database and NATS answer, and the relay is neither dead nor stalled (parked incidents are shown)",
    responses={503: ERRORS[503]},
)
async def ready(
    request: Request[Any, Any, Any],
    db: Db,
    link: NatsLink,
    outbox_store: OutboxStore,
    relay: OutboxRelay,
    settings: ApiSettings,
) -> Response[dict[str, Any]]:
    """States and counts for anyone; the relay's error text and parked event ids only with a valid token."""
    checks: dict[str, Any] = {"database": "ok", "nats": "ok" if link.connected else "disconnected"}
    checks["authentication"] = "on" if settings.tokens else "off"  # off: every route is open (local use only)
    try:
        await db.ping()
        backlog = await outbox_store.backlog()
        checks["outbox_backlog"] = backlog.size
        checks["outbox_oldest_age_seconds"] = round(backlog.oldest_age_seconds, 3)
    except UNAVAILABLE_ERRORS:
        checks["database"] = "unavailable"
    details = bool(request.scope.get("state", {}).get("token_holder"))
    checks["relay"] = relay_check(relay, settings.relay_stall_seconds, checks, details=details)
    # A parked incident holds back only itself: shown, alerted on by metric, but not a reason to take
    # every API replica out of service.
    failing = [name for name in ("database", "nats", "relay") if checks[name] not in ("ok", "parked")]
    if failing:
        body = {"status": "Service Unavailable", "error": f"not ready: {', '.join(failing)}", "checks": checks}
        return Response(body, status_code=503)
    return Response({"status": "ready", "checks": checks})


def relay_check(relay: OutboxRelay, stall_seconds: float, checks: dict[str, Any], *, details: bool) -> str:
    health = relay.health()
    if health.parked:
        checks["relay_parked_count"] = len(health.parked)
    if details and health.last_error:
        checks["relay_last_error"] = health.last_error
    if details and health.parked:
        checks["relay_parked"] = [
            {"incident_id": incident, "event_id": parked.event_id, "reason": parked.reason, "attempts": parked.attempts}
            for incident, parked in sorted(health.parked.items())[:MAX_PARKED_SHOWN]
        ]
    if not health.running:
        return "dead"
    if health.database_unavailable:
        return "unavailable"  # it can't reach the database: nothing moves until it can
    if health.stalled_seconds > stall_seconds:
        checks["relay_stalled_seconds"] = round(health.stalled_seconds, 3)
        return "stalled"
    if health.parked:
        return "parked"
    return "ok"
