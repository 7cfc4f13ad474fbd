"""The composition root of a worker process: HTTP client, NATS, record store, runner, health server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Mapping
from typing import TypeVar

import structlog
from nats.aio.client import Client

from services.workers.base import WorkerFactory
from services.workers.httpclient import HttpClient
from services.workers.metrics import WorkerMetrics
from services.workers.runner import Runner
from services.workers.settings import ServiceSettings
from services.workers.store import KvRecordStore, MemoryRecordStore, RecordStore, open_bucket
from shared.health import HealthServer
from shared.natsconn import connect
from shared.startup import when_jetstream_answers

log = structlog.get_logger(__name__)
T = TypeVar("T")


def http_client(settings: ServiceSettings) -> HttpClient:
    """One pooled client per worker; a timeout so that a stuck vendor becomes a retry, not a hang."""
    return HttpClient(timeout=settings.http_timeout, max_connections=settings.runner.concurrency * 2)


async def _unless_stopped(awaitable: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The awaitable's result, or None if `stop` is set first (e.g. SIGTERM while NATS is unreachable)."""
    task = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def serve(
    factory: WorkerFactory,
    env: Mapping[str, str],
    settings: ServiceSettings,
    stop: asyncio.Event | None = None,
) -> None:
    """Run one worker until SIGTERM/SIGINT (or `stop`), then shut down in order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    own_transport = getattr(factory, "serve", None)
    if own_transport is not None:  # e.g. webhooks: per-event deliveries on its own consumers, not a state sync
        await own_transport(env, settings, stop)
        return
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(http_client(settings))
        worker = factory.from_env(env, client)
        if worker.dry_run:
            log.warning("credentials unset: dry run, requests are logged and not sent", worker=worker.name)
        metrics = WorkerMetrics(worker.name)
        runner: Runner | None = None
        nc: Client | None = None

        async def ready() -> bool:
            return bool(nc is not None and nc.is_connected and runner is not None and runner.bound)

        if settings.health_port is not None:
            health = HealthServer(settings.health_host, settings.health_port, ready, metrics.render)
            await health.start()
            stack.push_async_callback(health.stop)
        nc = await _unless_stopped(connect(settings.nats, f"worker-{worker.name}", inbox=worker.name), stop)
        if nc is None:
            return
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        if worker.dry_run:
            store: RecordStore = MemoryRecordStore()
        else:
            bucket = when_jetstream_answers(lambda: open_bucket(js, worker.name), "bucket")
            kv = await _unless_stopped(bucket, stop)
            if kv is None:
                return
            store = KvRecordStore(kv)
        runner = Runner(worker, js, store, settings.runner, metrics=metrics)
        await runner.run(stop)
