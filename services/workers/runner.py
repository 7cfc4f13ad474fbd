"""The transport: a pull consumer fetched in batches, each incident's events in order, incidents in parallel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import deque

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from services.workers.base import Worker
from services.workers.errors import RetryableError
from services.workers.metrics import WorkerMetrics
from services.workers.processor import Park, Processor
from services.workers.settings import RunnerSettings
from services.workers.store import RecordStore
from shared.events import REDRIVE_HEADER, STREAM, CloudEvent, decode_event
from shared.jetstream import ACK_WAIT_SECONDS
from shared.pullsub import take_queued_directly
from shared.supervise import supervise

log = structlog.get_logger(__name__)

# nats-py's fetch can hang past its own timeout (nats-io/nats.py#933): never wait much longer.
FETCH_WATCHDOG_MARGIN = 5.0
PENDING_REFRESH_SECONDS = 5.0


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Runner:
    """Binds to the worker's durable consumer on INCIDENTS and feeds events to the worker."""

    def __init__(
        self,
        worker: Worker,
        js: JetStreamContext,
        store: RecordStore,
        settings: RunnerSettings,
        *,
        metrics: WorkerMetrics | None = None,
        owner: str | None = None,
    ) -> None:
        self.worker = worker
        self.js = js
        self.store = store
        self.settings = settings
        self.metrics = metrics or WorkerMetrics(worker.name)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.bound = False
        self.capacity = settings.fetch_batch + settings.concurrency
        self._sem = asyncio.Semaphore(settings.concurrency)
        self._queues: dict[str, deque[tuple[Msg, CloudEvent]]] = {}
        self._current: dict[str, list[Msg]] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._held = 0
        self._parked = 0
        """Held messages of incidents that wait (grace, lag, lease, rate limit, backoff): they hold no slot
        and don't keep the runner from fetching more."""
        self._room = asyncio.Event()
        self._stopping = False
        self._stop = asyncio.Event()
        self.processor: Processor | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; then finish or hand back what is held, and return."""
        bound = await self._bind(stop)
        if bound is None:
            return
        sub, info = bound
        ack_wait = info.config.ack_wait or ACK_WAIT_SECONDS
        self.processor = Processor(self.worker, self.store, self.settings, self.metrics, self.owner)
        interval = min(ack_wait, self.settings.lease_ttl) / 3
        helpers = [
            asyncio.create_task(
                supervise("heartbeat", lambda _: self._heartbeat(interval), stop, self.metrics.background_error)
            ),
            asyncio.create_task(supervise("pending-watch", self._watch_pending, stop, self.metrics.background_error)),
        ]
        log.info("worker running", worker=self.worker.name, owner=self.owner, dry_run=self.worker.dry_run)
        try:
            await self._fetch_loop(sub, stop)
        finally:
            await self._shutdown()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
            self.bound = False
            log.info("worker stopped", worker=self.worker.name)

    async def _bind(self, stop: asyncio.Event) -> tuple[JetStreamContext.PullSubscription, ConsumerInfo] | None:
        name = self.worker.name
        while not stop.is_set():
            try:
                info = await self.js.consumer_info(STREAM, name)
                sub = await self.js.pull_subscribe_bind(consumer=name, stream=STREAM)
                take_queued_directly(sub)
            except nats.js.errors.NotFoundError:
                log.warning("consumer not found yet; the event handler creates it", stream=STREAM, consumer=name)
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("cannot bind to the consumer yet", error=repr(exc))
            else:
                self.bound = True
                self._observe_consumer(info)
                return sub, info
            await _sleep_unless(stop, 1.0)
        return None

    async def _fetch_loop(self, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        timeout = self.settings.fetch_timeout
        while not stop.is_set():
            room = self.capacity - (self._held - self._parked)
            if room <= 0:
                self._room.clear()
                waiters = [asyncio.ensure_future(self._room.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                continue
            try:
                batch = min(room, self.settings.fetch_batch)
                msgs = await asyncio.wait_for(sub.fetch(batch, timeout=timeout), timeout + FETCH_WATCHDOG_MARGIN)
            except TimeoutError:
                continue  # nothing to do: an empty fetch raises TimeoutError
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                log.warning("fetch failed", error=repr(exc))
                await _sleep_unless(stop, 1.0)
                continue
            for msg in msgs:
                await self._dispatch(msg)

    async def _dispatch(self, msg: Msg) -> None:
        assert self.processor is not None
        if msg.metadata.num_delivered > 1:
            self.metrics.redeliveries += 1
        target = (msg.headers or {}).get(REDRIVE_HEADER)
        if target and target != self.worker.name:
            await self.processor.skip(msg, f"redrive for {target}")
            return
        try:
            event = decode_event(msg.data)
        except (msgspec.MsgspecError, ValueError) as exc:
            await self.processor.reject(msg, f"undecodable event: {exc}")
            return
        key = event.subject
        self._queues.setdefault(key, deque()).append((msg, event))
        self._held += 1
        self.metrics.in_flight = self._held
        if key not in self._drainers:
            self._drainers[key] = asyncio.create_task(self._drain(key))

    async def _drain(self, key: str) -> None:
        """Process one incident's events strictly in stream order: each pass takes everything queued for it
        (coalescing), and an incident that has to wait is parked here without holding a slot."""
        assert self.processor is not None
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                async with self._sem:
                    if self._stopping:
                        break
                    batch = list(queue)
                    queue.clear()
                    self._current[key] = [msg for msg, _ in batch]
                    try:
                        result = await self.processor.handle_all(batch)
                    except BaseException:
                        self._release(len(batch))  # the processor nakked them
                        raise
                    finally:
                        del self._current[key]
                if not isinstance(result, Park):
                    self._release(len(batch))
                    continue
                # Back at the head of the queue, in order; newer events that arrive meanwhile join the pass.
                queue.extendleft(reversed(batch))
                self._parked += len(batch)
                try:
                    await _sleep_unless(self._stop, result.delay)
                finally:
                    self._parked -= len(batch)
                    self._room.set()
        finally:
            while queue:
                msg, _ = queue.popleft()
                # Hand it back at once so that another replica can take it.
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()
                self._release(1)
            self._queues.pop(key, None)
            self._drainers.pop(key, None)

    def _release(self, count: int) -> None:
        self._held -= count
        self.metrics.in_flight = self._held
        self._room.set()

    async def _shutdown(self) -> None:
        self._stopping = True
        self._stop.set()
        drainers = list(self._drainers.values())
        if not drainers:
            return
        log.info("finishing in-flight events", incidents=len(drainers), grace=self.settings.shutdown_grace)
        _, late = await asyncio.wait(drainers, timeout=self.settings.shutdown_grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _heartbeat(self, interval: float) -> None:
        """Keep held messages from being redelivered, and leases of slow syncs from expiring."""
        assert self.processor is not None
        while True:
            await asyncio.sleep(interval)
            held = [m for msgs in self._current.values() for m in msgs] + [
                m for q in self._queues.values() for m, _ in q
            ]
            for msg in held:
                with contextlib.suppress(nats.errors.Error):
                    await msg.in_progress()
            for keeper in list(self.processor.active):
                try:
                    await keeper.renew()
                except RetryableError as exc:
                    log.warning("lease renewal failed", error=str(exc))
                except (nats.errors.Error, TimeoutError) as exc:
                    log.warning("lease renewal failed", error=repr(exc))

    async def _watch_pending(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _sleep_unless(stop, PENDING_REFRESH_SECONDS)
            try:
                info = await self.js.consumer_info(STREAM, self.worker.name)
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("consumer info failed", error=repr(exc))
                continue
            self._observe_consumer(info)

    def _observe_consumer(self, info: ConsumerInfo) -> None:
        self.metrics.num_pending = info.num_pending
        self.metrics.num_ack_pending = info.num_ack_pending
        self.metrics.num_redelivered = info.num_redelivered
