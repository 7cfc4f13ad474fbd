"""The event handler creates each worker's KV bucket with the streams' replica count."""

from __future__ import annotations

from nats.aio.client import Client

from services.eventhandler.streams import ensure_worker_buckets
from shared.jetstream import refs_bucket
from tests.integration.eventhandler.support import InProcessEventHandler, settings_for
from tests.support.processes import NatsServer


async def test_start_creates_every_configured_workers_bucket(nats_server: NatsServer, nc: Client) -> None:
    service = await InProcessEventHandler(settings_for(nats_server.url)).start()
    try:
        js = nc.jetstream()
        for worker in ("jira", "slack", "zendesk"):
            status = await (await js.key_value(refs_bucket(worker))).status()
            assert status.bucket == refs_bucket(worker)
    finally:
        await service.stop()


async def test_existing_bucket_is_kept(nats_server: NatsServer, nc: Client) -> None:
    js = nc.jetstream()
    await ensure_worker_buckets(js, ["jira"], 1)
    kv = await js.key_value(refs_bucket("jira"))
    await kv.put("incident.1", b"{}")
    await ensure_worker_buckets(js, ["jira"], 1)
    assert (await kv.get("incident.1")).value == b"{}"
