"""The deployed nats.conf for webhooks out: the API and the webhooks worker do their jobs, and no more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import msgspec
import nats.errors
import pytest
from nats.aio.msg import Msg

from services.api.delivery.eventhandler_client import NatsLink
from services.api.storage.db import Db
from services.api.webhooks.store import WebhookStore
from services.eventhandler.streams import ensure_webhook_objects
from services.workers.webhooks.consumers import delete_consumer, ensure_consumer
from services.workers.webhooks.journal import Journal
from shared.events import STREAM
from shared.feed import Feed
from shared.natsconn import NatsSettings
from shared.webhooks import (
    ENDPOINTS_BUCKET,
    REDELIVER_QUEUE,
    REDELIVER_SUBJECT,
    Attempt,
    Endpoint,
    EndpointSecret,
    RedeliverReply,
    consumer_name,
    encode,
    endpoint_key,
    new_secret,
)
from tests.deploy.manifests import example_secrets, render
from tests.deploy.natsconf import DeployedNats, start_deployed_nats
from tests.deploy.test_nats_permissions import DENIED_WAIT, as_user, consumer_broker, setup_streams
from tests.deploy.test_nats_permissions import login as login
from tests.support.polling import eventually


@pytest.fixture(scope="module")
def deployed_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedNats]:
    server = start_deployed_nats(render(), tmp_path_factory.mktemp("deployed-nats-webhooks"), example_secrets())
    try:
        yield server
    finally:
        server.stop()


def an_endpoint() -> Endpoint:
    now = datetime.now(UTC)
    return Endpoint(
        id="d" * 16,
        url="https://hooks.example.com/in",
        events=["incident.created"],
        secrets=[EndpointSecret(value=new_secret(), created_at=now)],
        created_at=now,
        updated_at=now,
    )


async def test_api_and_webhooks_worker_do_their_jobs(login: object) -> None:
    eventhandler = await setup_streams(login)
    await ensure_webhook_objects(eventhandler.js, 1)

    api = await as_user(login, "api")
    link = NatsLink(NatsSettings(servers=["nats://unused:1"]))
    link.nc = api.nc
    store = WebhookStore(link, Db("sqlite+aiosqlite:///:memory:"), allow_private=False, secret_overlap=60)
    endpoint = an_endpoint()
    await store.create(endpoint)
    assert [e.id for e in await store.list_all()] == [endpoint.id]

    broker = await consumer_broker(eventhandler)
    webhooks = await as_user(login, "webhooks")
    webhooks.js = webhooks.nc.jetstream(timeout=5)
    kv = await webhooks.js.key_value(ENDPOINTS_BUCKET)
    watcher = await Feed.open(webhooks.nc, "webhooks")
    seen = await watcher.next(timeout=5)
    assert seen is not None and seen.subject == f"$KV.{ENDPOINTS_BUCKET}.{endpoint_key(endpoint.id)}"
    await ensure_consumer(webhooks.nc, endpoint, 30.0)
    await eventhandler.js.publish("incident.created", b"{}", stream=STREAM)
    sub = await webhooks.js.pull_subscribe_bind(consumer=consumer_name(endpoint.id), stream=STREAM)
    (msg,) = await sub.fetch(1, timeout=5)
    await msg.ack()
    entry = await kv.get(endpoint_key(endpoint.id))
    disabled = msgspec.structs.replace(endpoint, enabled=False, disabled_reason="HTTP 410")
    await kv.update(endpoint_key(endpoint.id), encode(disabled), last=entry.revision)
    await watcher.close()

    attempt = Attempt(
        endpoint_id=endpoint.id,
        event_id="e1",
        type="incident.created",
        incident_id=1,
        incidentversion=1,
        attempt=1,
        outcome="delivered",
        time=datetime.now(UTC),
        duration_ms=1.0,
        status_code=200,
    )
    await Journal(webhooks.js).record(attempt)
    assert [a.event_id for a in await store.deliveries(endpoint.id, 10)] == ["e1"]
    assert (await store.get(endpoint.id)).enabled is False

    async def answer(request: Msg) -> None:
        await request.respond(encode(RedeliverReply(attempt=attempt)))

    responder = await webhooks.nc.subscribe(REDELIVER_SUBJECT, queue=REDELIVER_QUEUE, cb=answer)
    await webhooks.nc.flush()
    reply = await api.nc.request(REDELIVER_SUBJECT, b"{}", timeout=5)
    assert msgspec.json.decode(reply.data, type=RedeliverReply).attempt == attempt
    await responder.unsubscribe()

    await store.delete(endpoint.id)
    await delete_consumer(webhooks.nc, endpoint.id)
    assert consumer_name(endpoint.id) not in {c.name for c in await eventhandler.js.consumers_info(STREAM)}
    await broker.stop()
    await asyncio.sleep(0)  # let late error callbacks arrive before the clean check
    for user in (api, webhooks, eventhandler):
        user.clean()


async def test_webhooks_worker_cannot_touch_the_other_workers(login: object) -> None:
    eventhandler = await setup_streams(login)
    await eventhandler.js.publish("incident.created", b"{}", stream=STREAM)
    webhooks = await as_user(login, "webhooks")
    stolen = await webhooks.js.pull_subscribe_bind(consumer="jira", stream=STREAM)
    with pytest.raises(nats.errors.TimeoutError):
        await stolen.fetch(1, timeout=DENIED_WAIT)
    await webhooks.violation("publish", f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.jira")
    for action in ("INFO", "DELETE"):
        with pytest.raises(nats.errors.TimeoutError):
            if action == "INFO":
                await webhooks.js.consumer_info(STREAM, "slack")
            else:
                await webhooks.js.delete_consumer(STREAM, "zendesk")
    await webhooks.violation("publish", f"$JS.API.CONSUMER.INFO.{STREAM}.slack")
    await webhooks.violation("publish", f"$JS.API.CONSUMER.DELETE.{STREAM}.zendesk")
    forbidden = (
        "incident.created",
        "deadletter.webhooks",
        "eventhandler.publish",
        "$KV.refs-jira.incident.1",
        "$JS.ACK.INCIDENTS.jira.1.1.1.1.1.0",
    )
    for subject in forbidden:
        await webhooks.nc.publish(subject, b"{}")
        await webhooks.violation("publish", subject)

    api = await as_user(login, "api")
    await api.nc.publish("webhooks.deliveries.x", b"{}")
    await api.violation("publish", "webhooks.deliveries.x")

    async def refused_subscription() -> bool:
        await api.nc.subscribe("webhooks.redeliver")
        await api.violation("subscription", "webhooks.redeliver")
        return True

    await eventually(refused_subscription, timeout=5, what="the API not to answer redeliveries")
