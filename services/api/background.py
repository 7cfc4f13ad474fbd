"""The API's background loops, supervised: an error is logged, counted and gone past, and a loop that dies restarts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from services.api.alerts.service import AlertIntake
from services.api.incidents.events import Origin
from services.api.settings import AutoResolve
from services.api.storage.db import UNAVAILABLE_ERRORS
from services.api.storage.outbox import micros_ago
from services.api.storage.repository import SqlIncidentRepository
from services.api.web.metrics import ApiMetrics
from shared.supervise import Loop, pause
from shared.supervise import supervise as shared_supervise

log = structlog.get_logger(__name__)

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
HOUSEKEEPING_SECONDS = 3600.0
HOUSEKEEPING_RETRY_SECONDS = 60.0
AUTO_RESOLVE_MAX_CHECK_SECONDS = 30.0


async def supervise(name: str, loop: Loop, stop: asyncio.Event, metrics: ApiMetrics) -> None:
    """Run `loop` until `stop`; should it end by an error, it is logged, counted by task and started again."""
    await shared_supervise(name, loop, stop, lambda task: metrics.background_errors.inc(task=task))


async def housekeeping(
    repo: SqlIncidentRepository,
    stop: asyncio.Event,
    metrics: ApiMetrics,
    *,
    every: float = HOUSEKEEPING_SECONDS,
    retry: float = HOUSEKEEPING_RETRY_SECONDS,
) -> None:
    """Forget idempotency keys a day after their request; a failed prune is tried again sooner."""
    while not stop.is_set():
        wait = every
        try:
            pruned = await repo.prune_idempotency_keys(micros_ago(IDEMPOTENCY_TTL_SECONDS))
            log.info("idempotency keys pruned", pruned=pruned)
        except UNAVAILABLE_ERRORS as exc:
            metrics.background_errors.inc(task="housekeeping")
            log.warning("idempotency keys not pruned, will retry", error=str(exc) or type(exc).__name__)
            wait = min(every, retry)
        except Exception:
            metrics.background_errors.inc(task="housekeeping")
            log.exception("idempotency keys not pruned, will retry")
            wait = min(every, retry)
        await pause(stop, wait)


async def auto_resolve(
    intake: AlertIntake, rules: tuple[AutoResolve, ...], stop: asyncio.Event, metrics: ApiMetrics
) -> None:
    """Resolve incidents whose alerts stopped without a resolve (ALERT_AUTO_RESOLVE), checked often enough."""
    if not rules:
        return
    interval = min(AUTO_RESOLVE_MAX_CHECK_SECONDS, min(rule.seconds for rule in rules) / 4)
    origin = Origin(actor="auto-resolve")

    def failed(incident_id: int, exc: BaseException) -> None:
        metrics.background_errors.inc(task="auto-resolve")
        if isinstance(exc, UNAVAILABLE_ERRORS):
            log.warning("auto-resolve failed, will retry", incident_id=incident_id, error=str(exc) or repr(exc))
        else:
            log.error("auto-resolve failed, will retry", incident_id=incident_id, exc_info=exc)

    while not stop.is_set():
        for rule in rules:
            try:
                await intake.resolve_quiet(rule.integration, timedelta(seconds=rule.seconds), origin, on_error=failed)
            except UNAVAILABLE_ERRORS as exc:  # the list itself could not be read
                failed(0, exc)
        await pause(stop, interval)
