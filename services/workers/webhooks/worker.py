"""The `webhooks` entry point: a worker that owns its transport (one consumer per endpoint, one delivery per event)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import ClassVar

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.workers.httpclient import HttpClient
from services.workers.settings import ServiceSettings
from services.workers.webhooks.delivery import USER_AGENT, Deliverer
from services.workers.webhooks.metrics import WebhookMetrics
from services.workers.webhooks.settings import WebhookSettings
from services.workers.webhooks.supervisor import Supervisor
from shared.health import HealthServer
from shared.natsconn import connect
from shared.webhooks import ENDPOINTS_BUCKET, WEBHOOK_WORKER

log = structlog.get_logger(__name__)


def http_client(settings: WebhookSettings) -> HttpClient:
    """The workers' one HTTP client. It follows no redirect (a redirect would be a target the guard never
    checked) and uses no proxy (the connection must go to the address that was checked)."""
    return HttpClient(timeout=settings.timeout, max_connections=10, user_agent=USER_AGENT)


async def _bucket(js: JetStreamContext, stop: asyncio.Event) -> KeyValue | None:
    """The event handler creates the bucket at start-up; wait for it."""
    while not stop.is_set():
        try:
            return await js.key_value(ENDPOINTS_BUCKET)
        except (nats.js.errors.BucketNotFoundError, nats.errors.Error, TimeoutError) as exc:
            log.warning("endpoints bucket not available yet", bucket=ENDPOINTS_BUCKET, error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return None


class WebhooksWorker:
    name: ClassVar[str] = WEBHOOK_WORKER

    @classmethod
    async def serve(cls, env: Mapping[str, str], settings: ServiceSettings, stop: asyncio.Event) -> None:
        """Run until `stop`; then finish the deliveries in flight and drain."""
        webhook_settings = WebhookSettings.from_env(env)
        metrics = WebhookMetrics()
        supervisor: Supervisor | None = None
        nc: Client | None = None

        async def ready() -> bool:
            return bool(nc is not None and nc.is_connected and supervisor is not None and supervisor.watching)

        async with contextlib.AsyncExitStack() as stack:
            if settings.health_port is not None:
                health = HealthServer(settings.health_host, settings.health_port, ready, metrics.render)
                await health.start()
                stack.push_async_callback(health.stop)
            nc = await connect(settings.nats, name=f"worker-{cls.name}", inbox=cls.name)
            stack.push_async_callback(nc.drain)
            js = nc.jetstream()
            kv = await _bucket(js, stop)
            if kv is None:
                return
            deliverer = Deliverer(
                http_client(webhook_settings),
                timeout=webhook_settings.timeout,
                allow_private=webhook_settings.allow_private,
            )
            stack.push_async_callback(deliverer.aclose)
            supervisor = Supervisor(nc, js, kv, deliverer, webhook_settings, metrics)
            log.info(
                "webhooks worker running",
                allow_private_networks=webhook_settings.allow_private,
                timeout=webhook_settings.timeout,
                retry_budget=webhook_settings.retry_budget,
            )
            await supervisor.run(stop)
            log.info("webhooks worker stopped")
