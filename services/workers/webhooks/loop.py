"""One endpoint's delivery loop: fetch the next event from its consumer, deliver, then ack, nak or term.

The consumer lets one event at a time be unacknowledged, so a retry waiting out its backoff holds
back this endpoint only, and the endpoint's events go out in stream order. Everything about the
retry lives in JetStream (the delivery count and the nak delay): a crash at any point means the event
is delivered again after the ack wait, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.workers.webhooks.delivery import Deliverer, Result
from services.workers.webhooks.journal import Journal
from services.workers.webhooks.metrics import WebhookMetrics
from services.workers.webhooks.settings import WebhookSettings
from shared import logcontext, tracing
from shared.events import REDRIVE_HEADER, STREAM, CloudEvent, decode_event
from shared.webhooks import Attempt, Endpoint, consumer_name

log = structlog.get_logger(__name__)

FETCH_WATCHDOG_MARGIN = 5.0  # nats-py's fetch can outlive its timeout (nats-io/nats.py#933)
NATS_TROUBLE = (nats.errors.Error, TimeoutError)
OnGone = Callable[[Endpoint, str], Awaitable[bool]]
"""Disables the endpoint after a 410; False when that failed (the loop then goes on and meets the 410 again)."""
ERROR_RETRY_SECONDS = 5.0
"""An event whose handling failed unexpectedly is offered again after this long."""
Ensure = Callable[[Endpoint], Awaitable[None]]


def retry_delay(attempt: int, settings: WebhookSettings, retry_after: float | None) -> float:
    """Exponential backoff with jitter; a Retry-After answer wins."""
    if retry_after is not None:
        return retry_after
    ceiling = min(settings.retry_max, settings.retry_base * 2 ** max(attempt - 1, 0))
    return ceiling * random.uniform(0.5, 1.0)


def attempt_record(
    endpoint: Endpoint, event: CloudEvent, number: int, outcome: str, result: Result, **extra: object
) -> Attempt:
    return Attempt(
        endpoint_id=endpoint.id,
        event_id=event.id,
        type=event.type,
        incident_id=event.incident_id,
        incidentversion=event.incidentversion,
        attempt=number,
        outcome=outcome,
        time=datetime.now(UTC),
        duration_ms=round(result.duration * 1000, 1),
        status_code=result.status_code,
        error=result.error,
        **extra,  # type: ignore[arg-type]
    )


class EndpointLoop:
    def __init__(
        self,
        endpoint: Endpoint,
        js: JetStreamContext,
        deliverer: Deliverer,
        journal: Journal,
        settings: WebhookSettings,
        metrics: WebhookMetrics,
        on_gone: OnGone,
        ensure: Ensure,
    ) -> None:
        self.endpoint = endpoint  # replaced by the supervisor when the endpoint changes (url, secrets)
        self.consumer = consumer_name(endpoint.id)
        self.js = js
        self.deliverer = deliverer
        self.journal = journal
        self.settings = settings
        self.metrics = metrics
        self.on_gone = on_gone
        self.ensure = ensure
        self.stop = asyncio.Event()

    async def run(self) -> None:
        sub = await self._bind()
        if sub is None:
            return
        timeout = self.settings.fetch_timeout
        try:
            while not self.stop.is_set():
                try:
                    msgs = await asyncio.wait_for(sub.fetch(1, timeout=timeout), timeout + FETCH_WATCHDOG_MARGIN)
                except TimeoutError:
                    self.metrics.caught_up(self.endpoint.id)
                    continue
                except (nats.errors.Error, nats.js.errors.Error) as exc:
                    log.warning("fetch failed", consumer=self.consumer, error=repr(exc))
                    await self._recover()
                    await self._pause(1.0)
                    continue
                for msg in msgs:
                    await self._handle_supervised(msg)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _handle_supervised(self, msg: Msg) -> None:
        """`handle`, except that an unexpected error is logged, counted and the event offered again later."""
        try:
            await self.handle(msg)
        except Exception:
            self.metrics.loop_errors.inc(endpoint=self.endpoint.id)
            log.exception("webhook delivery failed unexpectedly, will retry", consumer=self.consumer)
            await self._settle(msg.nak(delay=ERROR_RETRY_SECONDS))

    async def _recover(self) -> None:
        """A consumer deleted by hand (or never created) is made again, from the endpoint's creation time."""
        try:
            await self.js.consumer_info(STREAM, self.consumer)
        except nats.js.errors.NotFoundError:
            log.warning("endpoint's consumer missing, creating it", consumer=self.consumer)
            with contextlib.suppress(*NATS_TROUBLE, nats.js.errors.Error):
                await self.ensure(self.endpoint)
        except NATS_TROUBLE:
            pass

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _bind(self) -> JetStreamContext.PullSubscription | None:
        while not self.stop.is_set():
            try:
                return await self.js.pull_subscribe_bind(consumer=self.consumer, stream=STREAM)
            except NATS_TROUBLE as exc:
                log.warning("cannot bind to the endpoint's consumer yet", consumer=self.consumer, error=repr(exc))
                await self._pause(1.0)
        return None

    async def handle(self, msg: Msg) -> None:
        target = (msg.headers or {}).get(REDRIVE_HEADER)
        if target and target != self.consumer:
            await self._settle(msg.ack())
            return
        try:
            event = decode_event(msg.data)
        except (msgspec.MsgspecError, ValueError) as exc:
            log.error("undecodable event terminated", consumer=self.consumer, error=str(exc))
            await self._settle(msg.term())
            return
        endpoint = self.endpoint
        meta = msg.metadata
        self.metrics.at_head(endpoint.id, meta.timestamp.timestamp(), meta.num_pending)
        with logcontext.bound(
            endpoint_id=endpoint.id, event_id=event.id, incident_id=event.incident_id, request_id=event.requestid
        ):
            result = await self._deliver(msg, endpoint, event.id)
            number = meta.num_delivered
            extra: dict[str, object] = {}
            settle: Callable[[], Awaitable[None]]
            if result.ok:
                outcome, settle = "delivered", msg.ack
            elif result.status_code == 410:
                # Disable first, so that no replica picks the event up again meanwhile; it stays
                # pending on the consumer and goes out if the endpoint is enabled again.
                if await self.on_gone(endpoint, f"HTTP 410 Gone for event {event.id}"):
                    outcome, settle = "disabled", functools.partial(msg.nak, delay=self.settings.ack_wait)
                    self.stop.set()
                else:  # still enabled: stopping now would hold the endpoint's events until a restart
                    delay = retry_delay(meta.num_delivered, self.settings, result.retry_after)
                    outcome, settle = "retrying", functools.partial(msg.nak, delay=delay)
                    extra = {"next_attempt_in_seconds": round(delay, 3)}
            else:
                delay = retry_delay(number, self.settings, result.retry_after)
                age = (datetime.now(UTC) - meta.timestamp).total_seconds()
                if age + delay > self.settings.retry_budget:
                    outcome, settle = "dead_lettered", msg.term  # the event handler copies it to DEADLETTERS
                else:
                    outcome, settle = "retrying", functools.partial(msg.nak, delay=delay)
                    extra = {"next_attempt_in_seconds": round(delay, 3)}
            attempt = attempt_record(endpoint, event, number, outcome, result, **extra)
            await self.journal.record(attempt)
            self.metrics.attempted(endpoint.id, outcome, result.ok, result.duration)
            log.info(
                "webhook attempt",
                attempt=number,
                outcome=outcome,
                status_code=result.status_code,
                error=result.error,
                duration_ms=attempt.duration_ms,
            )
            await self._settle(settle())

    async def _deliver(self, msg: Msg, endpoint: Endpoint, event_id: str) -> Result:
        if not tracing.recording():
            return await self.deliverer.deliver(endpoint, event_id, msg.data)
        # The event's trace goes on: a consumer span for the delivery, a client span for the POST.
        with (
            tracing.tracer().start_as_current_span(
                f"{self.consumer} delivery",
                context=tracing.extract(msg.headers),
                kind=tracing.SpanKind.CONSUMER,
                attributes={"messaging.system": "nats", "messaging.consumer.group.name": self.consumer},
            ),
            tracing.tracer().start_as_current_span(
                "POST",
                kind=tracing.SpanKind.CLIENT,
                attributes={"http.request.method": "POST", "url.full": endpoint.url.partition("?")[0]},
            ) as span,
        ):
            result = await self.deliverer.deliver(endpoint, event_id, msg.data)
            if result.status_code is not None:
                span.set_attribute("http.response.status_code", result.status_code)
            if not result.ok:
                span.set_status(tracing.StatusCode.ERROR, result.error)
            return result

    async def _settle(self, settlement: Awaitable[None]) -> None:
        try:
            await settlement
        except NATS_TROUBLE as exc:
            log.warning("could not settle message; it will be redelivered", error=repr(exc))
