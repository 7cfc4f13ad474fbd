"""Watches the endpoints bucket and runs one delivery loop per enabled endpoint; answers manual redeliveries."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from services.workers.webhooks.consumers import delete_consumer, ensure_consumer
from services.workers.webhooks.delivery import Deliverer
from services.workers.webhooks.journal import Journal
from services.workers.webhooks.loop import NATS_TROUBLE, EndpointLoop, attempt_record
from services.workers.webhooks.metrics import WebhookMetrics
from services.workers.webhooks.settings import WebhookSettings
from shared import logcontext
from shared.events import decode_event
from shared.feed import Feed, FeedGap
from shared.webhooks import (
    REDELIVER_QUEUE,
    REDELIVER_SUBJECT,
    WEBHOOK_WORKER,
    Endpoint,
    RedeliverReply,
    RedeliverRequest,
    decode_endpoint,
    encode,
    endpoint_key,
)

log = structlog.get_logger(__name__)

WATCH_POLL_SECONDS = 1.0
SHUTDOWN_GRACE_SECONDS = 20.0
LOOP_RESTART_SECONDS = 1.0


class Supervisor:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        kv: KeyValue,
        deliverer: Deliverer,
        settings: WebhookSettings,
        metrics: WebhookMetrics,
    ) -> None:
        self.nc = nc
        self.js = js
        self.kv = kv
        self.deliverer = deliverer
        self.journal = Journal(js)
        self.settings = settings
        self.metrics = metrics
        self.endpoints: dict[str, Endpoint] = {}
        self.loops: dict[str, tuple[EndpointLoop, asyncio.Task[None]]] = {}
        self.watching = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        redeliveries = await self.nc.subscribe(REDELIVER_SUBJECT, queue=REDELIVER_QUEUE, cb=self._on_redeliver)
        try:
            await self._watch(stop)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await redeliveries.unsubscribe()
            await self._stop_all()

    async def _watch(self, stop: asyncio.Event) -> None:
        """The endpoints bucket, read through a feed the event handler makes: every endpoint's last value, then
        each change. A feed lost (gap, NATS trouble) is opened again; it starts with every last value again."""
        while not stop.is_set():
            try:
                feed = await Feed.open(self.nc, WEBHOOK_WORKER)
            except NATS_TROUBLE as exc:
                log.warning("endpoints feed not available yet", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), WATCH_POLL_SECONDS)
                continue
            self.watching = True
            try:
                await self._follow(feed, stop)
            except (FeedGap, *NATS_TROUBLE) as exc:
                log.warning("endpoints feed lost, opening it again", error=repr(exc))
            finally:
                self.watching = False
                await feed.close()

    async def _follow(self, feed: Feed, stop: asyncio.Event) -> None:
        loaded = False
        while not stop.is_set():
            msg = await feed.next(timeout=WATCH_POLL_SECONDS)
            if msg is None:
                if not loaded:  # an empty bucket
                    loaded = True
                    log.info("endpoints loaded", endpoints=len(self.endpoints), running=len(self.loops))
                continue
            endpoint_id = msg.subject.rsplit(".", 1)[-1]
            if (msg.headers or {}).get(KV_OP) in (KV_DEL, KV_PURGE):
                await self._removed(endpoint_id)
            else:
                try:
                    await self._changed(decode_endpoint(msg.data or b""))
                except msgspec.MsgspecError as exc:
                    log.error("unreadable endpoint entry ignored", key=msg.subject, error=str(exc))
            if not loaded and msg.metadata.num_pending == 0:  # the initial values have all been seen
                loaded = True
                log.info("endpoints loaded", endpoints=len(self.endpoints), running=len(self.loops))

    async def _changed(self, endpoint: Endpoint) -> None:
        self.endpoints[endpoint.id] = endpoint
        running = self.loops.get(endpoint.id)
        if not endpoint.enabled:
            if running is not None:
                log.info("endpoint disabled, delivery stopped", endpoint_id=endpoint.id, why=endpoint.disabled_reason)
                await self._stop_loop(endpoint.id)
            return
        try:
            await ensure_consumer(self.nc, endpoint, self.settings.ack_wait)
        except (*NATS_TROUBLE, nats.js.errors.Error) as exc:
            # The loop keeps trying to bind; the next change or restart tries the consumer again.
            log.error("could not create or update the endpoint's consumer", endpoint_id=endpoint.id, error=repr(exc))
        if running is not None:
            running[0].endpoint = endpoint
            return
        self._start_loop(endpoint)
        log.info("endpoint delivery started", endpoint_id=endpoint.id, events=endpoint.events)

    def _start_loop(self, endpoint: Endpoint) -> None:
        loop = EndpointLoop(
            endpoint, self.js, self.deliverer, self.journal, self.settings, self.metrics, self._disable, self._ensure
        )
        task = asyncio.create_task(loop.run(), name=f"webhook-{endpoint.id}")
        self.loops[endpoint.id] = (loop, task)
        task.add_done_callback(lambda done: self._ended(endpoint.id, loop, done))

    def _ended(self, endpoint_id: str, loop: EndpointLoop, task: asyncio.Task[None]) -> None:
        """A loop that ended while its endpoint is still enabled (it died) is started again after a pause."""
        if loop.stop.is_set() or self.loops.get(endpoint_id, (None,))[0] is not loop:
            return
        error = None if task.cancelled() else task.exception()
        self.metrics.loop_errors.inc(endpoint=endpoint_id)
        log.error("endpoint delivery loop died, restarting it", endpoint_id=endpoint_id, exc_info=error)
        restart = asyncio.create_task(self._restart_loop(endpoint_id, loop))
        self._tasks.add(restart)
        restart.add_done_callback(self._tasks.discard)

    async def _restart_loop(self, endpoint_id: str, dead: EndpointLoop) -> None:
        await asyncio.sleep(LOOP_RESTART_SECONDS)  # the schedule: no busy loop on a loop that dies at once
        endpoint = self.endpoints.get(endpoint_id)
        running = self.loops.get(endpoint_id)
        if endpoint is None or not endpoint.enabled or running is None or running[0] is not dead:
            return
        self._start_loop(endpoint)

    async def _ensure(self, endpoint: Endpoint) -> None:
        await ensure_consumer(self.nc, endpoint, self.settings.ack_wait)

    async def _removed(self, endpoint_id: str) -> None:
        self.endpoints.pop(endpoint_id, None)
        await self._stop_loop(endpoint_id)
        self.metrics.forget(endpoint_id)
        with contextlib.suppress(*NATS_TROUBLE):
            await delete_consumer(self.nc, endpoint_id)
        log.info("endpoint deleted, consumer removed", endpoint_id=endpoint_id)

    async def _stop_loop(self, endpoint_id: str) -> None:
        running = self.loops.pop(endpoint_id, None)
        if running is None:
            return
        loop, task = running
        loop.stop.set()
        if task is not asyncio.current_task():
            await asyncio.wait({task}, timeout=self.settings.timeout + 5)

    async def _stop_all(self) -> None:
        for loop, _ in self.loops.values():
            loop.stop.set()
        tasks = [task for _, task in self.loops.values()] + list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self.loops.clear()

    async def _disable(self, endpoint: Endpoint, reason: str) -> bool:
        """410 Gone: the receiver asks us to stop. Compare-and-set, so a concurrent edit is not lost.

        True when the endpoint is disabled (or gone); False when that could not be written.
        """
        key = endpoint_key(endpoint.id)
        for _ in range(5):
            try:
                entry = await self.kv.get(key)
                current = decode_endpoint(entry.value or b"")
                if not current.enabled:
                    return True
                disabled = msgspec.structs.replace(
                    current, enabled=False, disabled_reason=reason, updated_at=datetime.now(UTC)
                )
                await self.kv.update(key, encode(disabled), last=entry.revision)
                log.warning("endpoint disabled", endpoint_id=endpoint.id, reason=reason)
                return True
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return True
            except NATS_TROUBLE as exc:
                log.warning("could not disable the endpoint yet", endpoint_id=endpoint.id, error=repr(exc))
                return False
        return False

    async def _on_redeliver(self, msg: Msg) -> None:
        task = asyncio.create_task(self._redeliver(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _redeliver(self, msg: Msg) -> None:
        """One attempt now, outside the schedule; the answer goes to the delivery log and back to the API."""
        try:
            request = msgspec.json.decode(msg.data, type=RedeliverRequest)
            event = decode_event(request.event.encode())
        except (msgspec.MsgspecError, ValueError) as exc:
            reply = RedeliverReply(error=f"bad request: {exc}")
        else:
            endpoint = self.endpoints.get(request.endpoint_id)
            if endpoint is None:
                reply = RedeliverReply(error="unknown endpoint")
            else:
                with logcontext.bound(endpoint_id=endpoint.id, event_id=event.id):
                    result = await self.deliverer.deliver(endpoint, event.id, request.event.encode())
                    outcome = "delivered" if result.ok else "failed"
                    attempt = attempt_record(endpoint, event, 1, outcome, result, manual=True)
                    await self.journal.record(attempt)
                    self.metrics.attempted(endpoint.id, outcome, result.ok, result.duration)
                    log.info("manual redelivery", outcome=outcome, status_code=result.status_code, error=result.error)
                reply = RedeliverReply(attempt=attempt)
        with contextlib.suppress(*NATS_TROUBLE):
            await msg.respond(encode(reply))
