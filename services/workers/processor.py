"""One incident's queued messages from fetch to settlement: lease, one coalesced sync, record, then ack,
park (wait in-process, no slot held), nak with a delay, or term."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

import nats.errors
import structlog
from nats.aio.msg import Msg

from services.workers.base import Worker
from services.workers.deadline import sync_deadline
from services.workers.errors import PermanentError, RetryableError, Wait
from services.workers.fence import fenced
from services.workers.http import collect_dry_run_requests
from services.workers.lease import LeaseKeeper
from services.workers.metrics import Outcome, WorkerMetrics
from services.workers.records import IncidentRecord, is_stale
from services.workers.settings import RunnerSettings
from services.workers.store import RecordStore
from shared import logcontext, tracing
from shared.events import CloudEvent
from shared.records import error_record

log = structlog.get_logger(__name__)

# NATS trouble while settling or writing errors: the message is redelivered after AckWait anyway.
_NATS_TROUBLE = (nats.errors.Error, TimeoutError)

Settlement = Callable[[], Awaitable[None]]
# Records kept per replica (a few hundred bytes each); an incident's events usually come close together.
RECORD_CACHE_SIZE = 10_000
Queued = tuple[Msg, CloudEvent]


class Park:
    """Keep the messages (in progress) and try the incident again after `delay` seconds."""

    __slots__ = ("delay",)

    def __init__(self, delay: float) -> None:
        self.delay = delay


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
        self.cache: dict[int, tuple[IncidentRecord, int]] = {}
        """The records this replica wrote last, with their revisions: saves a KV read per pass."""
        self.attempts: dict[int, int] = {}
        """Failed passes per incident while it is parked in this process (the backoff's exponent)."""

    async def skip(self, msg: Msg, reason: str) -> Outcome:
        log.info("event skipped", reason=reason)
        self.metrics.observe(Outcome.SKIPPED, 0.0)
        await self._settle(msg.ack(), "ack")
        return Outcome.SKIPPED

    async def reject(self, msg: Msg, error: str) -> Outcome:
        """An event that can't be decoded: record why and terminate it."""
        await self._write_error(msg, error)
        log.error("event failed permanently", error=error, deliveries=msg.metadata.num_delivered)
        self.metrics.observe(Outcome.FAILED, 0.0)
        await self._settle(msg.term(), "term")
        return Outcome.FAILED

    async def handle(self, msg: Msg, event: CloudEvent) -> Outcome | Park:
        """One message on its own (tests and tools); the runner hands over whole queues."""
        return await self.handle_all([(msg, event)])

    async def handle_all(self, queued: Sequence[Queued]) -> Outcome | Park:
        """Apply one incident's queued events in one pass; settle them, or ask to be parked."""
        started = time.monotonic()
        # By version, not arrival: a redelivery (after a pause, a crash, a NATS restart) may come in behind
        # newer events, and the newest decides what is stale.
        queued = sorted(queued, key=lambda item: item[1].incidentversion)
        newest = queued[-1][1]
        with logcontext.bound(
            incident_id=newest.incident_id,
            event_id=newest.id,
            worker=self.worker.name,
            incidentversion=newest.incidentversion,
            request_id=newest.requestid,
            coalesced=len(queued),
        ):
            keeper = LeaseKeeper(self.store, self.owner, self.settings.lease_ttl)
            self.active.add(keeper)
            try:
                result = await self._traced_apply(queued, keeper)
            except asyncio.CancelledError:
                for msg, _ in queued:
                    await self._settle(msg.nak(), "nak")
                raise
            finally:
                self.active.discard(keeper)
            if isinstance(result, Park):
                return result
            outcome, settlements = result
            self.attempts.pop(newest.incident_id, None)
            elapsed = time.monotonic() - started
            # Counted before settling: whoever sees a message settled also sees it counted.
            for each, _ in settlements:
                self.metrics.observe(each, elapsed)
            for _, settle in settlements:
                await settle()
            return outcome

    async def _traced_apply(
        self, queued: Sequence[Queued], keeper: LeaseKeeper
    ) -> Park | tuple[Outcome, list[tuple[Outcome, Settlement]]]:
        """One span per pass, in the newest event's trace (from its NATS headers), linked to the others."""
        if not tracing.recording():
            return await self._apply(queued, keeper)
        newest_msg, newest = queued[-1]
        links = [link for link in (tracing.link_to(e.traceparent) for _, e in queued[:-1]) if link is not None]
        with tracing.tracer().start_as_current_span(
            f"{self.worker.name} sync",
            context=tracing.extract(newest_msg.headers),
            kind=tracing.SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": self.worker.name,
                "messaging.batch.message_count": len(queued),
                "messaging.message.id": newest.id,
                "incidents.incident_id": newest.incident_id,
            },
        ) as span:
            result = await self._apply(queued, keeper)
            span.set_attribute("incidents.outcome", "parked" if isinstance(result, Park) else result[0].value)
            return result

    async def _apply(
        self, queued: Sequence[Queued], keeper: LeaseKeeper
    ) -> Park | tuple[Outcome, list[tuple[Outcome, Settlement]]]:
        newest = queued[-1][1]
        live: list[Queued] = list(queued)
        would_send = collect_dry_run_requests() if self.worker.dry_run else None
        try:
            incident = newest.incident_id
            record = await keeper.acquire(incident, newest.incidentversion, 0.0, self.cache.pop(incident, None))
            before = keeper.loaded
            if record is None or before is None:
                log.debug("stale events skipped")
                return Outcome.SKIPPED, [(Outcome.SKIPPED, self._acker(m)) for m, _ in queued]
            live = [(m, e) for m, e in queued if not is_stale(before, e.incidentversion)]
            stale = [(m, e) for m, e in queued if is_stale(before, e.incidentversion)]
            synced: IncidentRecord | None = None
            try:
                with sync_deadline(self.settings.sync_timeout), fenced(keeper.check):
                    synced = await self.worker_sync([e for _, e in live], record, keeper)
                await keeper.finish(synced, newest.incidentversion)
                self._remember(keeper)
            except BaseException:
                with contextlib.suppress(*_NATS_TROUBLE):
                    # After a sync whose last write failed, what it did outside is kept: the next pass diffs
                    # against what the outside object shows now, not against the record from before it.
                    await keeper.release(synced)
                raise
        except Wait as exc:
            log.debug("incident parked", reason=str(exc), delay=round(exc.delay or 0.0, 3))
            return self._park_or_give_up(live, exc)
        except RetryableError as exc:
            return await self._retry(live, exc)
        except PermanentError as exc:
            return Outcome.FAILED, await self._fail(live, str(exc))
        except _NATS_TROUBLE as exc:
            return await self._retry(live, RetryableError(f"NATS: {exc!r}"))
        except Exception as exc:
            # A bug or an unexpected answer: retry with backoff so it ends in the dead letters.
            log.exception("unexpected error while syncing")
            return await self._retry(live, RetryableError(f"unexpected {type(exc).__name__}: {exc}"))
        # delay_ms: from the commit that recorded the newest event to now (the acks follow at once).
        now = time.time()
        delay_ms = round((now - newest.time.timestamp()) * 1000, 1)
        for msg, _ in live:
            self.metrics.observe_sync_lag(now - msg.metadata.timestamp.timestamp())
        dry = {"would_send": would_send} if would_send else {}  # a dry run's requests, method and URL
        if len(live) > 1:
            # Every event this pass covered (acked with it), so that one grep still finds each of them.
            ids = [e.id for _, e in live]
            requests = sorted({e.requestid for _, e in live if e.requestid})
            log.info("event applied", delay_ms=delay_ms, event_ids=ids, request_ids=requests, **dry)
        else:
            log.info("event applied", delay_ms=delay_ms, **dry)
        retried = newest.incident_id in self.attempts  # failed passes here wrote errors that are now old
        settlements = [(Outcome.PROCESSED, self._acker(m, applied=True, retried=retried)) for m, _ in live]
        settlements += [(Outcome.SKIPPED, self._acker(m)) for m, _ in stale]
        return Outcome.PROCESSED, settlements

    async def worker_sync(
        self, events: list[CloudEvent], record: IncidentRecord, keeper: LeaseKeeper
    ) -> IncidentRecord:
        sync_all = getattr(self.worker, "sync_all", None)
        if sync_all is not None:
            result: IncidentRecord = await sync_all(events, record, keeper)
            return result
        for event in events:  # a worker that can't coalesce gets its events one by one
            record = await self.worker.sync(event, record, keeper)
        return record

    def _remember(self, keeper: LeaseKeeper) -> None:
        if keeper.record is None:
            return
        if len(self.cache) >= RECORD_CACHE_SIZE:
            del self.cache[next(iter(self.cache))]  # the oldest entry
        self.cache[keeper.record.incident_id] = (keeper.record, keeper.revision)

    def _acker(self, msg: Msg, *, applied: bool = False, retried: bool = False) -> Settlement:
        async def ack() -> None:
            await self._settle(msg.ack(), "ack")
            if applied and (retried or msg.metadata.num_delivered > 1):
                with contextlib.suppress(*_NATS_TROUBLE):
                    await self.store.clear_error(msg.metadata.sequence.stream)

        return ack

    def _remaining_budget(self, queued: Sequence[Queued]) -> float:
        """Seconds left of the retry budget of the oldest message (it runs out first)."""
        oldest = min(m.metadata.timestamp.timestamp() for m, _ in queued)
        return self.settings.retry_budget - (time.time() - oldest)

    def _park_or_give_up(
        self, queued: Sequence[Queued], exc: Wait
    ) -> Park | tuple[Outcome, list[tuple[Outcome, Settlement]]]:
        remaining = self._remaining_budget(queued)
        delay = exc.delay if exc.delay is not None else self.settings.retry_base
        if remaining <= 0:
            error = f"retry budget of {self.settings.retry_budget:g} s spent while waiting: {exc}"
            return Outcome.DEAD_LETTERED, [(Outcome.DEAD_LETTERED, self._terminator(m, error)) for m, _ in queued]
        return Park(min(delay, remaining))

    async def _retry(
        self, queued: Sequence[Queued], exc: RetryableError
    ) -> Park | tuple[Outcome, list[tuple[Outcome, Settlement]]]:
        """Park with backoff (or the vendor's Retry-After) while the retry budget lasts; then term the
        messages, so the event handler dead-letters them from the terminated advisories."""
        newest = queued[-1][0]
        incident = queued[-1][1].incident_id
        attempts = self.attempts.get(incident, 0) + 1
        self.attempts[incident] = attempts
        deliveries = newest.metadata.num_delivered + attempts - 1
        budget = self.settings.retry_budget
        remaining = self._remaining_budget(queued)
        if remaining <= 0:
            self.attempts.pop(incident, None)
            error = f"retry budget of {budget:g} s spent after {deliveries} attempts: {exc}"
            log.error("event dead-lettered: retry budget spent", error=str(exc), deliveries=deliveries)
            for msg, _ in queued:
                await self._write_error(msg, error, deliveries)
            return Outcome.DEAD_LETTERED, [(Outcome.DEAD_LETTERED, self._terminator(m)) for m, _ in queued]
        await self._write_error(newest, str(exc), deliveries)
        delay = (
            exc.delay
            if exc.delay is not None
            else backoff(deliveries, self.settings.retry_base, self.settings.retry_max)
        )
        delay = min(delay, remaining)  # one last try when the budget ends
        self.metrics.observe(Outcome.RETRIED, 0.0)
        log.warning("event will be retried", error=str(exc), deliveries=deliveries, delay=delay)
        return Park(delay)

    async def _fail(self, queued: Sequence[Queued], error: str) -> list[tuple[Outcome, Settlement]]:
        for msg, _ in queued:
            await self._write_error(msg, error)
        log.error("event failed permanently", error=error, deliveries=queued[-1][0].metadata.num_delivered)
        return [(Outcome.FAILED, self._terminator(m)) for m, _ in queued]

    def _terminator(self, msg: Msg, error: str | None = None) -> Settlement:
        async def term() -> None:
            if error is not None:
                await self._write_error(msg, error)
            await self._settle(msg.term(), "term")

        return term

    async def _write_error(self, msg: Msg, error: str, attempts: int | None = None) -> None:
        """`attempts`: deliveries plus the retries made while parked in this process."""
        meta = msg.metadata
        record = error_record(error, self.worker.name, attempts or meta.num_delivered)
        try:
            await self.store.put_error(meta.sequence.stream, record)
        except _NATS_TROUBLE as exc:
            log.warning("could not record the error", error=repr(exc))

    async def _settle(self, settlement: Awaitable[None], what: str) -> None:
        try:
            await settlement
        except _NATS_TROUBLE as exc:
            log.warning("could not settle message; it will be redelivered", settlement=what, error=repr(exc))
