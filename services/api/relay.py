"""The outbox relay: hands committed events to the event handler in order, retrying until they are stored."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from services.api.db import UNAVAILABLE_ERRORS
from services.api.eventhandler_client import EventHandlerClient, EventHandlerError, EventHandlerUnavailable
from services.api.metrics import ApiMetrics
from services.api.outbox import OutboxStore

log = structlog.get_logger(__name__)

RETRY_LATER: tuple[type[BaseException], ...] = (EventHandlerUnavailable, EventHandlerError, *UNAVAILABLE_ERRORS)


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        client: EventHandlerClient,
        *,
        batch_size: int = 500,
        idle_poll: float = 1.0,
        max_backoff: float = 5.0,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.client = client
        self.batch_size = batch_size
        self.idle_poll = idle_poll
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self.delivered_total = 0

    def notify(self) -> None:
        """Called after each commit that wrote outbox rows."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.0
        while not stop.is_set():
            self._wake.clear()
            try:
                more = await self.send_batch()
                backoff = 0.0
            except RETRY_LATER as exc:
                backoff = min(max(0.1, backoff * 2), self.max_backoff)
                if self.metrics is not None:
                    self.metrics.relay_failures.inc()
                log.warning("outbox relay will retry", error=str(exc) or type(exc).__name__, retry_in=backoff)
                await _wait_any(stop, None, backoff)
                continue
            if not more:
                await _wait_any(stop, self._wake, self.idle_poll)

    async def flush(self, timeout: float) -> None:
        """One last attempt at shutdown; what is left stays in the outbox for the next start."""
        with contextlib.suppress(TimeoutError, *RETRY_LATER):
            async with asyncio.timeout(timeout):
                while await self.send_batch():
                    pass

    async def send_batch(self) -> bool:
        """Send one batch; True when a full batch went out and more may be waiting."""
        async with self.store.claim(self.batch_size) as claim:
            if not claim.rows:
                return False
            reply = await self.client.publish([row.payload for row in claim.rows])
            # A rejected event is invalid for good; it leaves the outbox but stays in the event log.
            done = set(reply.stored) | {r.get("id", "") for r in reply.rejected}
            await claim.delivered({row.id for row in claim.rows if row.event_id in done})
            self.delivered_total += len(reply.stored)
            if self.metrics is not None:
                self.metrics.relayed.inc(len(reply.stored))
        for rejected in reply.rejected:
            log.error(
                "event handler rejected an outbox event", event_id=rejected.get("id"), error=rejected.get("error")
            )
            if self.metrics is not None:
                self.metrics.rejected.inc()
        if reply.failed:
            raise EventHandlerUnavailable(f"{len(reply.failed)} events not stored yet")
        return len(claim.rows) >= self.batch_size


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
