"""Composition root: connect, ensure streams and consumers, serve the micro service until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.eventhandler.consumers import ConsumerBroker
from services.eventhandler.deadletters import DeadLetters
from services.eventhandler.metrics import Metrics
from services.eventhandler.pipeline import JetStreamPublisher
from services.eventhandler.publishing import BatchPublisher
from services.eventhandler.redrive import DeadLetterQueue
from services.eventhandler.service import Endpoints, start_service
from services.eventhandler.settings import Settings
from services.eventhandler.streams import (
    ensure_consumers,
    ensure_streams,
    ensure_webhook_objects,
    ensure_worker_buckets,
)
from services.eventhandler.subscriptions import Subscriptions, load_subscriptions
from shared.events import STREAM
from shared.health import HealthServer
from shared.natsconn import connect
from shared.startup import when_jetstream_answers
from shared.supervise import supervise

log = structlog.get_logger(__name__)


def readiness(nc: Client, js: JetStreamContext, deadletters: asyncio.Task[None]) -> Callable[[], Awaitable[bool]]:
    """Ready: NATS connected, the INCIDENTS stream answers and dead letters are being consumed."""

    async def ready() -> bool:
        if not nc.is_connected or deadletters.done():
            return False
        try:
            await js.stream_info(STREAM)
        except (nats.errors.Error, TimeoutError):
            return False
        return True

    return ready


async def close(nc: Client) -> None:
    """Drain, so in-flight requests get their replies; a connection that is reconnecting can only close."""
    try:
        await nc.drain()
    except (nats.errors.ConnectionReconnectingError, nats.errors.ConnectionClosedError):
        try:
            await nc.close()
        # nats-py flushes into the socket a failed reconnect left dead: asyncio says ConnectionError, uvloop
        # RuntimeError ("the handler is closed").
        except (ConnectionError, RuntimeError) as exc:
            log.info("nats connection already lost at close", error=repr(exc))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run(settings: Settings, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set; `started` is set once every endpoint answers."""
    initial = load_subscriptions(settings.subscriptions_file)
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        nc = await connect(settings.nats, "eventhandler", inbox="eventhandler")
        stack.push_async_callback(close, nc)
        js = nc.jetstream()
        replicas = settings.stream_replicas
        await when_jetstream_answers(lambda: ensure_streams(js, replicas), "streams")
        await when_jetstream_answers(lambda: ensure_consumers(nc, js, initial), "consumers")
        await when_jetstream_answers(lambda: ensure_worker_buckets(js, sorted(initial), replicas), "buckets")
        await when_jetstream_answers(lambda: ensure_webhook_objects(js, replicas), "webhook objects")
        deadletters = asyncio.create_task(
            supervise(
                "deadletters",
                DeadLetters(js, metrics).consume,
                stop,
                lambda task: metrics.inc("eventhandler_background_errors_total", task=task),
            ),
            name="deadletters",
        )
        stack.push_async_callback(_cancel, deadletters)
        publisher = JetStreamPublisher(nc)
        await publisher.start()
        stack.push_async_callback(publisher.stop)
        endpoints = Endpoints(
            BatchPublisher(publisher, metrics), Subscriptions(nc, js, sorted(initial)), DeadLetterQueue(js, metrics)
        )
        service = await start_service(nc, endpoints, metrics, ConsumerBroker(nc, js))
        stack.push_async_callback(service.stop)
        if settings.health_port is not None:
            ready = readiness(nc, js, deadletters)
            health = HealthServer(settings.health_host, settings.health_port, ready, metrics.render)
            await health.start()
            stack.push_async_callback(health.stop)
        await nc.flush()
        log.info("eventhandler started", service_id=service.id, workers=sorted(initial))
        if started is not None:
            started.set()
        await stop.wait()
        log.info("eventhandler stopping")
