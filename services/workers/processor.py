"""One message from fetch to settlement: lease, sync, record, then ack, nak with a delay, or term."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import nats.errors
import structlog
from nats.aio.msg import Msg

from services.workers.base import Worker
from services.workers.deadline import sync_deadline
from services.workers.errors import PermanentError, RetryableError
from services.workers.lease import LeaseKeeper
from services.workers.metrics import Outcome, WorkerMetrics
from services.workers.settings import RunnerSettings
from services.workers.store import RecordStore, error_record
from shared.events import CloudEvent

log = structlog.get_logger(__name__)

# NATS trouble while settling or writing errors: the message is redelivered after AckWait anyway.
_NATS_TROUBLE = (nats.errors.Error, TimeoutError)


Settlement = Callable[[], Awaitable[None]]


def backoff(deliveries: int, base: float, cap: float) -> float:
    # The exponent is capped: with no delivery limit, 2**deliveries would overflow a float.
    return float(min(cap, base * 2 ** min(max(deliveries - 1, 0), 32)))


class Processor:
    def __init__(
        self,
        worker: Worker,
        store: RecordStore,
        settings: RunnerSettings,
        metrics: WorkerMetrics,
        owner: str,
    ) -> None:
        self.worker = worker
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.owner = owner
        self.active: set[LeaseKeeper] = set()

    async def skip(self, msg: Msg, reason: str) -> Outcome:
        log.info("event skipped", reason=reason)
        self.metrics.observe(Outcome.SKIPPED, 0.0)
        await self._settle(msg.ack(), "ack")
        return Outcome.SKIPPED

    async def reject(self, msg: Msg, error: str) -> Outcome:
        """An event that can't be decoded: record why and terminate it."""
        outcome, settle = await self._fail(msg, error)
        self.metrics.observe(outcome, 0.0)
        await settle()
        return outcome

    async def handle(self, msg: Msg, event: CloudEvent) -> Outcome:
        started = time.monotonic()
        with structlog.contextvars.bound_contextvars(
            incident_id=event.incident_id,
            event_id=event.id,
            worker=self.worker.name,
            incidentversion=event.incidentversion,
            request_id=event.requestid,
        ):
            keeper = LeaseKeeper(self.store, self.owner, self.settings.lease_ttl)
            self.active.add(keeper)
            try:
                outcome, settle = await self._apply(msg, event, keeper)
            except asyncio.CancelledError:
                await self._settle(msg.nak(), "nak")
                raise
            finally:
                self.active.discard(keeper)
            elapsed = time.monotonic() - started
            # Counted before settling: whoever sees the message settled also sees it counted.
            self.metrics.observe(outcome, elapsed)
            await settle()
            log.debug("event settled", outcome=outcome.value, seconds=round(elapsed, 4))
            return outcome

    async def _apply(self, msg: Msg, event: CloudEvent, keeper: LeaseKeeper) -> tuple[Outcome, Settlement]:
        try:
            record = await keeper.acquire(event.incident_id, event.incidentversion, self.settings.lease_wait)
            if record is None:
                log.info("stale event skipped")
                return Outcome.SKIPPED, lambda: self._settle(msg.ack(), "ack")
            try:
                with sync_deadline(self.settings.sync_timeout):
                    record = await self.worker.sync(event, record, keeper)
                await keeper.finish(record, event.incidentversion)
            except BaseException:
                with contextlib.suppress(*_NATS_TROUBLE):
                    await keeper.release()
                raise
        except RetryableError as exc:
            return await self._retry(msg, exc)
        except PermanentError as exc:
            return await self._fail(msg, str(exc))
        except _NATS_TROUBLE as exc:
            return await self._retry(msg, RetryableError(f"NATS: {exc!r}"))
        except Exception as exc:
            # A bug or an unexpected answer: redeliver with backoff so it ends in the dead letters.
            log.exception("unexpected error while syncing")
            return await self._retry(msg, RetryableError(f"unexpected {type(exc).__name__}: {exc}"))
        # delay_ms: from the commit that recorded the event to now (the ack follows at once).
        log.info("event applied", delay_ms=round((time.time() - event.time.timestamp()) * 1000, 1))
        return Outcome.PROCESSED, lambda: self._ack_applied(msg)

    async def _ack_applied(self, msg: Msg) -> None:
        await self._settle(msg.ack(), "ack")
        if msg.metadata.num_delivered > 1:
            with contextlib.suppress(*_NATS_TROUBLE):
                await self.store.clear_error(msg.metadata.sequence.stream)

    async def _retry(self, msg: Msg, exc: RetryableError) -> tuple[Outcome, Settlement]:
        """Nak with backoff (or the vendor's Retry-After) while the retry budget lasts; then term it, so the
        event handler dead-letters it from the terminated advisory."""
        meta = msg.metadata
        deliveries = meta.num_delivered
        budget = self.settings.retry_budget
        remaining = budget - (time.time() - meta.timestamp.timestamp())
        if remaining <= 0:
            error = f"retry budget of {budget:g} s spent after {deliveries} deliveries: {exc}"
            await self._write_error(msg, error)
            log.error("event dead-lettered: retry budget spent", error=str(exc), deliveries=deliveries)
            return Outcome.DEAD_LETTERED, lambda: self._settle(msg.term(), "term")
        await self._write_error(msg, str(exc))
        if exc.delay is not None:
            delay = exc.delay
        else:
            delay = backoff(deliveries, self.settings.retry_base, self.settings.retry_max)
        delay = min(delay, remaining)  # one last try when the budget ends
        log.warning("event will be redelivered", error=str(exc), deliveries=deliveries, delay=delay)
        return Outcome.RETRIED, lambda: self._settle(msg.nak(delay=delay), "nak")

    async def _fail(self, msg: Msg, error: str) -> tuple[Outcome, Settlement]:
        await self._write_error(msg, error)
        log.error("event failed permanently", error=error, deliveries=msg.metadata.num_delivered)
        return Outcome.FAILED, lambda: self._settle(msg.term(), "term")

    async def _write_error(self, msg: Msg, error: str) -> None:
        meta = msg.metadata
        record = error_record(error, self.worker.name, meta.num_delivered)
        try:
            await self.store.put_error(meta.sequence.stream, record)
        except _NATS_TROUBLE as exc:
            log.warning("could not record the error", error=repr(exc))

    async def _settle(self, settlement: Awaitable[None], what: str) -> None:
        try:
            await settlement
        except _NATS_TROUBLE as exc:
            log.warning("could not settle message; it will be redelivered", settlement=what, error=repr(exc))
