"""The composition root of a worker process: HTTP client, NATS, record store, runner, health server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping

import httpx
import structlog

from services.workers.base import WorkerFactory
from services.workers.runner import Runner
from services.workers.settings import ServiceSettings
from services.workers.store import KvRecordStore, MemoryRecordStore, RecordStore, open_bucket
from shared.health import HealthServer
from shared.natsconn import connect

log = structlog.get_logger(__name__)


def http_client(settings: ServiceSettings) -> httpx.AsyncClient:
    """One pooled client per worker; timeouts so that a stuck vendor becomes a retry, not a hang."""
    pool = settings.runner.concurrency
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout, connect=min(5.0, settings.http_timeout)),
        limits=httpx.Limits(max_connections=pool * 2, max_keepalive_connections=pool),
        headers={"User-Agent": "incidents-worker/0.1"},
    )


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
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(http_client(settings))
        worker = factory.from_env(env, client)
        if worker.dry_run:
            log.warning("credentials unset: dry run, requests are logged and not sent", worker=worker.name)
        nc = await connect(settings.nats, name=f"worker-{worker.name}")
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        store: RecordStore = (
            MemoryRecordStore() if worker.dry_run else KvRecordStore(await open_bucket(js, worker.name))
        )
        runner = Runner(worker, js, store, settings.runner)
        if settings.health_port is not None:

            async def ready() -> bool:
                return bool(nc.is_connected and runner.bound)

            health = HealthServer(settings.health_host, settings.health_port, ready, runner.metrics.render)
            await health.start()
            stack.push_async_callback(health.stop)
        await runner.run(stop)
