"""Liveness and readiness: ready means the database and NATS answer; the outbox backlog is reported."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from services.api.db import UNAVAILABLE_ERRORS, Db
from services.api.eventhandler_client import NatsLink
from services.api.outbox import OutboxStore
from services.api.routes.openapi import ERRORS


@get("/health/live", tags=["health"], summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "live"}


@get("/health/ready", tags=["health"], summary="The database and NATS answer", responses={503: ERRORS[503]})
async def ready(db: Db, link: NatsLink, outbox_store: OutboxStore) -> Response[dict[str, Any]]:
    checks: dict[str, Any] = {"database": "ok", "nats": "ok" if link.connected else "disconnected"}
    try:
        await db.ping()
        backlog = await outbox_store.backlog()
        checks["outbox_backlog"] = backlog.size
        checks["outbox_oldest_age_seconds"] = round(backlog.oldest_age_seconds, 3)
    except UNAVAILABLE_ERRORS:
        checks["database"] = "unavailable"
    failing = [name for name in ("database", "nats") if checks[name] != "ok"]
    if failing:
        body = {"status": "Service Unavailable", "error": f"not ready: {', '.join(failing)}", "checks": checks}
        return Response(body, status_code=503)
    return Response({"status": "ready", "checks": checks})
