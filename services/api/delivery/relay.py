"""The outbox relay: hands committed events to the event handler in order, retrying until they are stored.

Each request is bounded by shared.relay's limits (events and bytes). An event the event handler
rejects, or one that can't be sent at all (too large, refused), stays in the outbox and *parks* its
incident: that incident's later events wait behind it and it is retried with backoff, while every
other incident goes on. The relay never ends on an error: whatever fails is logged, counted and
retried; `health()` tells readiness when it is dead, stalled or holding parked incidents.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from services.api.delivery.eventhandler_client import EventHandlerClient, EventHandlerError, EventHandlerUnavailable
from services.api.storage.db import UNAVAILABLE_ERRORS, is_lock_conflict
from services.api.storage.outbox import Claim, OutboxRow, OutboxStore
from services.api.web.metrics import ApiMetrics
from shared.relay import MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES, PublishReply, request_bytes

log = structlog.get_logger(__name__)

RETRY_LATER: tuple[type[BaseException], ...] = (EventHandlerUnavailable, *UNAVAILABLE_ERRORS)
SHUTDOWN_LEFTOVERS: tuple[type[BaseException], ...] = (TimeoutError, EventHandlerError, *RETRY_LATER)
REFUSED_CODES = (400, 413)  # the request itself is refused: find the row that causes it
CONFLICT_JITTER_SECONDS = 0.02
"""After a lock conflict with another replica, each waits a random moment before claiming again."""
PIPELINE = 2
"""Requests of handed-over rows in flight to the event handler at once (each holds whole incidents)."""
MAX_HANDED_OVER = 20_000
"""Rows kept in memory at most; beyond, the relay reads them from the outbox table like after a restart."""


def retry_later(exc: BaseException) -> bool:
    """A failure of the path (NATS, event handler, JetStream, database): the whole relay waits and retries."""
    return isinstance(exc, RETRY_LATER) or (isinstance(exc, EventHandlerError) and exc.code not in REFUSED_CODES)


@dataclass(slots=True)
class Parked:
    """An incident whose first outbox row could not be delivered; nothing of it is sent before `retry_at`."""

    event_id: str
    reason: str
    attempts: int
    since: float
    retry_at: float


@dataclass(frozen=True, slots=True)
class RelayHealth:
    running: bool
    stalled_seconds: float
    """How long the relay has gone without a round that ended normally."""
    parked: dict[int, Parked]
    last_error: str | None
    database_unavailable: bool = False
    """The last round failed on the database (and none has ended normally since)."""


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        client: EventHandlerClient,
        *,
        batch_size: int = 500,
        idle_poll: float = 1.0,
        max_backoff: float = 30.0,
        park_base: float = 1.0,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.client = client
        self.batch_size = batch_size
        self.idle_poll = idle_poll
        self.max_backoff = max_backoff
        self.park_base = park_base
        self.parked: dict[int, Parked] = {}
        self.running = False
        self.last_error: str | None = None
        self.database_unavailable = False
        self.delivered_total = 0
        self._last_progress = time.monotonic()
        self._wake = asyncio.Event()
        self._handed: list[OutboxRow] = []
        self._poll_due = True  # the table first: what a previous run or another replica left
        self._next_poll = 0.0

    def notify(self) -> None:
        """Called after each commit that wrote outbox rows: the relay reads them from the table."""
        self._poll_due = True
        self._wake.set()

    def offer(self, rows: Sequence[OutboxRow]) -> None:
        """Rows of a committed create, handed over in memory: sent without reading the outbox back.

        Only new incidents come this way, each with all of its rows at once, so no request of handed-over
        rows holds an incident that another one holds too: two can be in flight without breaking order.
        The table stays the truth: whatever is not confirmed here is sent by a table round.
        """
        if len(self._handed) + len(rows) > MAX_HANDED_OVER:
            self._poll_due = True
        else:
            self._handed.extend(rows)
        self._wake.set()

    def health(self) -> RelayHealth:
        stalled = 0.0 if not self.running else time.monotonic() - self._last_progress
        return RelayHealth(self.running, stalled, dict(self.parked), self.last_error, self.database_unavailable)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop`; every failure is logged, counted and retried with backoff."""
        self.running = True
        self._last_progress = time.monotonic()
        backoff = 0.0
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    if self._table_due():
                        more = await self._table_round()
                    else:
                        await self._send_handed()
                        more = bool(self._handed)
                except Exception as exc:  # supervision: nothing may end the relay; see _failed
                    if is_lock_conflict(exc):
                        # Another replica's relay claimed the same rows at the same moment: not an outage.
                        log.info("outbox claim met another replica's; claiming again", error=str(exc))
                        self._poll_due = True  # what the failed statement left is in the table
                        await _wait_any(stop, None, random.uniform(0, CONFLICT_JITTER_SECONDS))
                        continue
                    backoff = min(max(0.1, backoff * 2), self.max_backoff)
                    self._failed(exc, backoff)
                    # The API's next commit proves the database is back: go at once rather than wait out the backoff.
                    await _wait_any(stop, self._wake if self.database_unavailable else None, backoff)
                    continue
                backoff = 0.0
                if not more:
                    await _wait_any(stop, self._wake, self._idle_timeout())
        finally:
            self.running = False

    async def flush(self, timeout: float) -> None:
        """One last attempt at shutdown; what is left stays in the outbox for the next start."""
        try:
            async with asyncio.timeout(timeout):
                while await self.send_batch():
                    pass
        except SHUTDOWN_LEFTOVERS as exc:
            log.info("outbox left for the next start", error=str(exc) or type(exc).__name__)
        except Exception:  # shutdown goes on to close NATS and the database; the rows stay in the outbox
            log.exception("last outbox attempt failed")

    async def _table_round(self) -> bool:
        """A round from the outbox table; handed-over rows it covered are not sent again."""
        self._poll_due = False
        self._next_poll = time.monotonic() + self.idle_poll  # rows of other replicas are read at least this often
        handed, self._handed = self._handed, []
        try:
            more, claimed = await self._send_claimed()
        except BaseException:
            self._poll_due = True  # what was handed over is in the table: the next table round sends it
            raise
        self._handed = [row for row in handed if row.id not in claimed] + self._handed
        self._poll_due = self._poll_due or more
        return more or bool(self._handed)

    async def _send_handed(self) -> None:
        """Send the handed-over rows, up to PIPELINE requests in flight.

        Confirmed rows are deleted in the background, one statement for all confirmed since the last one,
        so a delete never holds up the next request; all are deleted before this returns.
        """
        in_flight: deque[tuple[list[OutboxRow], asyncio.Future[PublishReply]]] = deque()
        trouble: BaseException | None = None
        deleting: asyncio.Future[None] | None = None
        confirmed: list[int] = []
        try:
            while self._handed or in_flight:
                while self._handed and len(in_flight) < PIPELINE and trouble is None:
                    rows = self._take_handed()
                    in_flight.append((rows, asyncio.ensure_future(self.client.publish([r.payload for r in rows]))))
                if not in_flight:
                    break
                rows, reply = in_flight.popleft()
                try:
                    stored = set((await reply).stored)
                except Exception as exc:  # the rows are in the table: a table round after the backoff sends them
                    trouble = trouble or exc
                    stored = set()
                delivered = [row.id for row in rows if row.event_id in stored]
                if len(delivered) < len(rows):
                    # Rejected or not stored: the table round parks or retries them with the rules it has.
                    self._handed.clear()
                    self._poll_due = True
                confirmed += delivered
                self.delivered_total += len(delivered)
                if self.metrics is not None:
                    self.metrics.relayed.inc(len(delivered))
                if confirmed and (deleting is None or deleting.done()):
                    if deleting is not None:
                        deleting.result()  # a failed delete ends the round; the rows are resent, deduplicated
                    deleting, confirmed = asyncio.ensure_future(self.store.delete(confirmed)), []
        finally:
            for _, reply in in_flight:  # only on an error: the table round resends what they carried
                reply.cancel()
            if deleting is not None:
                await deleting
            if confirmed:
                await self.store.delete(confirmed)
        if trouble is not None:
            raise trouble
        self._progressed()

    def _take_handed(self) -> list[OutboxRow]:
        """The next request's rows, within the count and byte limits, whole incidents only."""
        limit = min(self.batch_size, MAX_EVENTS_PER_REQUEST)
        size = request_bytes([])
        taken = 0
        while taken < len(self._handed):
            grown = size + len(self._handed[taken].payload) + (1 if taken else 0)
            if taken >= limit or (taken and grown > MAX_REQUEST_BYTES):
                break
            size = grown
            taken += 1
        # Keep an incident's rows together: never split them across two requests in flight.
        while 0 < taken < len(self._handed) and self._handed[taken].incident_id == self._handed[taken - 1].incident_id:
            taken -= 1
        if taken == 0:
            taken = 1
            while taken < len(self._handed) and self._handed[taken].incident_id == self._handed[0].incident_id:
                taken += 1
        rows, self._handed = self._handed[:taken], self._handed[taken:]
        return rows

    async def send_batch(self) -> bool:
        """Send one claim of rows; True when a full claim went out and more may be waiting."""
        more, _ = await self._send_claimed()
        return more

    async def _send_claimed(self) -> tuple[bool, set[int]]:
        """Claim, send and settle; whether the claim was full, and the ids of the rows it held."""
        now = time.monotonic()
        waiting = {incident for incident, parked in self.parked.items() if parked.retry_at > now}
        trouble: BaseException | None = None
        async with self.store.claim(self.batch_size, exclude=waiting) as claim:
            if len(claim.rows) < self.batch_size:
                self._forget_gone(claim.rows, waiting)
            if claim.rows:
                trouble = await self._send(claim, claim.rows, set())
        if trouble is not None:
            raise trouble
        self._progressed()
        self._observe_parked()
        return len(claim.rows) >= self.batch_size, {row.id for row in claim.rows}

    async def _send(
        self, claim: Claim, rows: Sequence[OutboxRow], blocked: set[int], *, one_each: bool = False
    ) -> BaseException | None:
        """Send `rows` in bounded requests, in order; an incident in `blocked` sends nothing more this round.

        Returns the failure that should make the whole relay wait (NATS, the event handler or JetStream).
        """
        for request in _Requests(self, rows, blocked, one_each):
            try:
                reply = await self.client.publish([row.payload for row in request])
            except EventHandlerError as exc:
                if exc.code not in REFUSED_CODES:
                    return exc
                if len(request) == 1:
                    self._park(request[0], f"refused by the event handler ({exc.code}): {exc.description}")
                    blocked.add(request[0].incident_id)
                    continue
                # One row spoils the request for all: send them one by one so it parks only its incident.
                trouble = await self._send(claim, request, blocked, one_each=True)
                if trouble is not None:
                    return trouble
                continue
            except RETRY_LATER as exc:
                return exc
            trouble = await self._settle(claim, request, reply, blocked)
            if trouble is not None:
                return trouble
        return None

    async def _settle(
        self, claim: Claim, request: list[OutboxRow], reply: PublishReply, blocked: set[int]
    ) -> BaseException | None:
        stored = set(reply.stored)
        rejected = {item.id: item.error for item in reply.rejected}
        failed = {item.id: item.error for item in reply.failed}
        delivered: set[int] = set()
        not_stored = 0
        for row in request:
            if row.event_id in stored:
                delivered.add(row.id)
                self._unpark(row)
            elif row.event_id in rejected:
                self._park(row, f"rejected by the event handler: {rejected[row.event_id]}")
                blocked.add(row.incident_id)
                if self.metrics is not None:
                    self.metrics.rejected.inc()
            elif row.event_id in failed:
                if row.incident_id not in blocked:  # behind a rejected event of its incident is not a failure
                    not_stored += 1
                    log.warning("event not stored yet", event_id=row.event_id, error=failed[row.event_id])
                blocked.add(row.incident_id)
            else:
                self._park(row, "the event handler's reply does not mention this event")
                blocked.add(row.incident_id)
        await claim.delivered(delivered)
        self.delivered_total += len(delivered)
        if self.metrics is not None:
            self.metrics.relayed.inc(len(delivered))
        if not_stored:
            return EventHandlerUnavailable(f"{not_stored} events not stored yet")
        return None

    def oversized(self, row: OutboxRow) -> None:
        self._park(row, f"event of {len(row.payload)} bytes exceeds the limit of {MAX_EVENT_BYTES}")

    def _park(self, row: OutboxRow, reason: str) -> None:
        now = time.monotonic()
        previous = self.parked.get(row.incident_id)
        attempts = previous.attempts + 1 if previous and previous.event_id == row.event_id else 1
        delay = min(self.park_base * 2 ** min(attempts - 1, 30), self.max_backoff)  # a parked row may wait days
        since = previous.since if previous and previous.event_id == row.event_id else now
        self.parked[row.incident_id] = Parked(row.event_id, reason, attempts, since, now + delay)
        log.error(
            "outbox event parked: its incident waits, others go on",
            incident_id=row.incident_id,
            event_id=row.event_id,
            reason=reason,
            attempts=attempts,
            retry_in=round(delay, 3),
        )
        self._observe_parked()

    def _unpark(self, row: OutboxRow) -> None:
        parked = self.parked.pop(row.incident_id, None)
        if parked is not None:
            log.info("parked incident delivered again", incident_id=row.incident_id, event_id=row.event_id)
            self._observe_parked()

    def _forget_gone(self, rows: Sequence[OutboxRow], waiting: set[int]) -> None:
        """A due parked incident absent from a claim that saw every eligible row was delivered elsewhere."""
        present = {row.incident_id for row in rows}
        for incident in [i for i in self.parked if i not in waiting and i not in present]:
            del self.parked[incident]
            log.info("parked incident no longer in the outbox", incident_id=incident)

    def _observe_parked(self) -> None:
        if self.metrics is not None:
            self.metrics.parked = len(self.parked)

    def _progressed(self) -> None:
        self._last_progress = time.monotonic()
        self.last_error = None
        self.database_unavailable = False

    def _failed(self, exc: BaseException, backoff: float) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.database_unavailable = isinstance(exc, UNAVAILABLE_ERRORS)
        if retry_later(exc):
            if self.metrics is not None:
                self.metrics.relay_failures.inc()
            log.warning("outbox relay will retry", error=str(exc) or type(exc).__name__, retry_in=backoff)
            return
        if self.metrics is not None:
            self.metrics.relay_errors.inc()
        log.exception("outbox relay failed unexpectedly, will retry", error=self.last_error, retry_in=backoff)

    def _table_due(self) -> bool:
        now = time.monotonic()
        return self._poll_due or now >= self._next_poll or any(p.retry_at <= now for p in self.parked.values())

    def _idle_timeout(self) -> float:
        if not self.parked:
            return self.idle_poll
        due = min(parked.retry_at for parked in self.parked.values()) - time.monotonic()
        return max(0.01, min(self.idle_poll, due))


class _Requests:
    """Packs rows into requests within the count and byte limits, skipping blocked incidents.

    Iterated lazily, so a row rejected in one request blocks its incident's rows in the next ones.
    A row that is too large for any request parks its incident.
    """

    def __init__(self, relay: OutboxRelay, rows: Sequence[OutboxRow], blocked: set[int], one_each: bool) -> None:
        self._relay = relay
        self._rows = rows
        self._blocked = blocked
        self._limit = 1 if one_each else MAX_EVENTS_PER_REQUEST
        self._position = 0

    def __iter__(self) -> _Requests:
        return self

    def __next__(self) -> list[OutboxRow]:
        request: list[OutboxRow] = []
        size = request_bytes([])
        while self._position < len(self._rows):
            row = self._rows[self._position]
            if row.incident_id in self._blocked:
                self._position += 1
                continue
            if len(row.payload) > MAX_EVENT_BYTES:
                self._relay.oversized(row)
                self._blocked.add(row.incident_id)
                self._position += 1
                continue
            grown = size + len(row.payload) + (1 if request else 0)  # the comma between events
            if len(request) >= self._limit or (request and grown > MAX_REQUEST_BYTES):
                break
            request.append(row)
            size = grown
            self._position += 1
        if not request:
            raise StopIteration
        return request


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
