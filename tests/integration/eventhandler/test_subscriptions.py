"""Streams and consumers at start-up, subscriptions get/set, and micro service discovery."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from services.eventhandler.streams import put_consumer
from shared.consumers import (
    FEED_USERS,
    WEBHOOK_CONSUMER_DELETE_SUBJECT,
    WEBHOOK_CONSUMER_ENSURE_SUBJECT,
    feed_close_subject,
    feed_open_subject,
)
from shared.events import STREAM, EventType, decode_event, encode_event
from shared.jetstream import (
    DEADLETTER_STREAM,
    DEADLETTERS_LIST_SUBJECT,
    DEADLETTERS_REDRIVE_SUBJECT,
    EVENTHANDLER_SERVICE,
    NO_EVENTS_SUBJECT,
    PUBLISH_SUBJECT,
    SUBSCRIPTIONS_GET_SUBJECT,
    SUBSCRIPTIONS_SET_SUBJECT,
    UNLIMITED_DELIVERIES,
)
from tests.integration.eventhandler.support import (
    InProcessEventHandler,
    ServiceErrorReply,
    call,
    publish_body,
    settings_for,
)
from tests.support.polling import eventually
from tests.support.processes import ROOT, NatsServer
from tests.unit.eventhandler.factory import make_event

EVERY_CHANGE = [
    "incident.acknowledged",
    "incident.commented",
    "incident.created",
    "incident.deleted",
    "incident.reopened",
    "incident.resolved",
    "incident.unacknowledged",
    "incident.updated",
]
SHIPPED = {
    "jira": [t for t in EVERY_CHANGE if t != "incident.unacknowledged"],
    "slack": EVERY_CHANGE,
    "zendesk": EVERY_CHANGE,
}


async def publish(nc: Client, *events: EventType | tuple[int, EventType]) -> list[str]:
    built = [
        make_event(10, i + 1, e) if isinstance(e, EventType) else make_event(e[0], i + 1, e[1])
        for i, e in enumerate(events)
    ]
    reply = await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(e) for e in built]))
    assert len(reply["stored"]) == len(built)
    return [e.id for e in built]


async def pull_types(nc: Client, worker: str, expected: int) -> list[str]:
    """Fetch and ack what the worker's consumer delivers; exactly `expected` messages."""
    sub = await nc.jetstream().pull_subscribe_bind(worker, STREAM)
    types: list[str] = []

    async def probe() -> bool:
        try:
            for msg in await sub.fetch(expected - len(types) or 1, timeout=0.2):
                types.append(decode_event(msg.data).type)
                await msg.ack()
        except TimeoutError:
            pass
        assert len(types) <= expected, types
        return len(types) == expected

    await eventually(probe, timeout=10, what=f"{expected} messages for {worker}")
    info = await nc.jetstream().consumer_info(STREAM, worker)
    assert info.num_pending == 0, "more messages than expected"
    await sub.unsubscribe()
    return types


async def test_start_creates_streams_and_consumers_from_the_file(
    nc: Client, eventhandler: InProcessEventHandler
) -> None:
    js = nc.jetstream()
    assert (await js.stream_info(STREAM)).config.subjects == ["incident.>"]
    assert (await js.stream_info(DEADLETTER_STREAM)).config.subjects == ["deadletter.>"]
    for worker, subjects in SHIPPED.items():
        config = (await js.consumer_info(STREAM, worker)).config
        assert config.durable_name == worker and config.filter_subjects == subjects
        assert config.deliver_policy == DeliverPolicy.NEW
    assert await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {}) == SHIPPED


async def test_unknown_events_and_bad_workers_are_400(nc: Client, eventhandler: InProcessEventHandler) -> None:
    with pytest.raises(ServiceErrorReply) as unknown:
        await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "jira", "events": ["incident.created", "incident.foo"]})
    assert (unknown.value.code, unknown.value.description) == ("400", "unknown event type: incident.foo")
    for body in (
        {"worker": "Jira!", "events": []},
        {"worker": "jira", "events": [], "start": "yesterday"},
        {"worker": "jira"},
        {"worker": "jira", "events": "incident.created"},
    ):
        with pytest.raises(ServiceErrorReply) as bad:
            await call(nc, SUBSCRIPTIONS_SET_SUBJECT, body)
        assert bad.value.code == "400", body
    assert await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {}) == SHIPPED


async def test_a_filter_change_changes_what_the_consumer_receives(
    nc: Client, eventhandler: InProcessEventHandler
) -> None:
    js = nc.jetstream()
    await publish(nc, EventType.CREATED)
    assert await pull_types(nc, "jira", 1) == ["incident.created"]
    before = await js.consumer_info(STREAM, "jira")

    reply = await call(
        nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "jira", "events": ["incident.resolved"], "start": None}
    )

    assert reply == {"worker": "jira", "events": ["incident.resolved"]}
    after = await js.consumer_info(STREAM, "jira")
    assert after.created == before.created and after.ack_floor.stream_seq == before.ack_floor.stream_seq
    await publish(nc, EventType.UPDATED, EventType.RESOLVED, EventType.COMMENTED)
    assert await pull_types(nc, "jira", 1) == ["incident.resolved"]
    assert (await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {}))["jira"] == ["incident.resolved"]


async def test_an_empty_list_receives_nothing(nc: Client, eventhandler: InProcessEventHandler) -> None:
    reply = await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "zendesk", "events": []})
    assert reply == {"worker": "zendesk", "events": []}
    config = (await nc.jetstream().consumer_info(STREAM, "zendesk")).config
    assert config.filter_subjects == [NO_EVENTS_SUBJECT]
    assert (await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {}))["zendesk"] == []
    await publish(nc, EventType.CREATED)
    assert (await nc.jetstream().consumer_info(STREAM, "zendesk")).num_pending == 0


async def test_new_workers_start_now_from_a_time_or_from_the_start(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    # Workers added to the subscriptions file whose consumers are not there yet (deleted after start).
    extra = "".join(f'[workers.{w}]\nevents = ["created"]\n' for w in ("fresh", "audit", "late", "plain"))
    file = tmp_path / "subscriptions.toml"
    file.write_text((ROOT / "config/subscriptions.toml").read_text() + extra)
    handler = await InProcessEventHandler(settings_for(nats_server.url, file)).start()
    try:
        await _new_workers_start_now_from_a_time_or_from_the_start(nc)
    finally:
        await handler.stop()


async def _new_workers_start_now_from_a_time_or_from_the_start(nc: Client) -> None:
    js = nc.jetstream()
    for worker in ("fresh", "audit", "late", "plain"):
        await js.delete_consumer(STREAM, worker)
    await publish(nc, EventType.CREATED, EventType.ACKNOWLEDGED)
    second = await js.get_msg(STREAM, seq=2)
    since = second.time
    assert isinstance(since, datetime)
    everything = ["incident.acknowledged", "incident.created", "incident.resolved"]

    await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "fresh", "events": everything, "start": "now"})
    await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "audit", "events": everything, "start": "all"})
    await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "late", "events": everything, "start": since.isoformat()})
    await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "plain", "events": everything})
    await publish(nc, (11, EventType.CREATED))

    assert await pull_types(nc, "fresh", 1) == ["incident.created"]
    assert await pull_types(nc, "plain", 1) == ["incident.created"]
    assert await pull_types(nc, "audit", 3) == ["incident.created", "incident.acknowledged", "incident.created"]
    assert await pull_types(nc, "late", 2) == ["incident.acknowledged", "incident.created"]
    subscriptions = await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {})
    assert {w: subscriptions[w] for w in ("audit", "fresh", "late", "plain")} == dict.fromkeys(
        ("audit", "fresh", "late", "plain"), everything
    )


async def test_a_start_for_an_existing_worker_replays_history(nc: Client, eventhandler: InProcessEventHandler) -> None:
    await publish(nc, EventType.CREATED, EventType.RESOLVED)
    assert await pull_types(nc, "jira", 2) == ["incident.created", "incident.resolved"]

    await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "jira", "events": ["incident.resolved"], "start": "all"})

    assert await pull_types(nc, "jira", 1) == ["incident.resolved"]


async def test_a_runtime_change_survives_a_restart(nc: Client, eventhandler: InProcessEventHandler) -> None:
    await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "slack", "events": ["incident.deleted"]})
    await nc.jetstream().delete_consumer(STREAM, "zendesk")
    await eventhandler.stop()

    await eventhandler.start()

    subscriptions = await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {})
    assert subscriptions["slack"] == ["incident.deleted"]
    assert subscriptions["zendesk"] == SHIPPED["zendesk"]  # deleted: back to the file


async def test_start_lifts_the_delivery_limit_of_an_older_consumer_and_keeps_its_filters(
    nc: Client, eventhandler: InProcessEventHandler
) -> None:
    """Consumers made by an older version stop redelivering after 10 tries; retries are bounded by time now."""
    await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "slack", "events": ["incident.deleted"]})
    await eventhandler.stop()
    js = nc.jetstream()
    info = await js.consumer_info(STREAM, "slack")
    await put_consumer(nc, dataclasses.replace(info.config, max_deliver=10), "update")
    assert (await js.consumer_info(STREAM, "slack")).config.max_deliver == 10

    await eventhandler.start()

    upgraded = await js.consumer_info(STREAM, "slack")
    assert upgraded.config.max_deliver == UNLIMITED_DELIVERIES
    assert upgraded.config.filter_subjects == ["incident.deleted"]
    for worker in SHIPPED:
        assert (await js.consumer_info(STREAM, worker)).config.max_deliver == UNLIMITED_DELIVERIES


async def test_two_replicas_start_at_once(nc: Client, eventhandler: InProcessEventHandler) -> None:
    js = nc.jetstream()
    for worker in SHIPPED:
        await js.delete_consumer(STREAM, worker)
    others = [InProcessEventHandler(eventhandler.settings) for _ in range(3)]
    await asyncio.gather(*(o.start() for o in others))
    try:
        assert await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {}) == SHIPPED
    finally:
        await asyncio.gather(*(o.stop() for o in others))


async def test_discovery_lists_the_service_and_its_endpoints(nc: Client, eventhandler: InProcessEventHandler) -> None:
    info = json.loads((await nc.request(f"$SRV.INFO.{EVENTHANDLER_SERVICE}", b"", timeout=5)).data)
    assert info["name"] == EVENTHANDLER_SERVICE
    assert sorted(e["subject"] for e in info["endpoints"]) == sorted(
        [
            PUBLISH_SUBJECT,
            SUBSCRIPTIONS_GET_SUBJECT,
            SUBSCRIPTIONS_SET_SUBJECT,
            DEADLETTERS_LIST_SUBJECT,
            DEADLETTERS_REDRIVE_SUBJECT,
            *(subject(user) for user in FEED_USERS for subject in (feed_open_subject, feed_close_subject)),
            WEBHOOK_CONSUMER_ENSURE_SUBJECT,
            WEBHOOK_CONSUMER_DELETE_SUBJECT,
        ]
    )
    ping = json.loads((await nc.request("$SRV.PING", b"", timeout=5)).data)
    assert ping["name"] == EVENTHANDLER_SERVICE
    with pytest.raises(ServiceErrorReply):
        await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "jira", "events": ["nope"]})
    await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {})
    stats = json.loads((await nc.request(f"$SRV.STATS.{EVENTHANDLER_SERVICE}", b"", timeout=5)).data)
    by_subject = {e["subject"]: e for e in stats["endpoints"]}
    assert by_subject[SUBSCRIPTIONS_SET_SUBJECT]["num_errors"] == 1
    assert by_subject[SUBSCRIPTIONS_GET_SUBJECT]["num_requests"] == 1


async def test_without_the_stream_publish_fails_and_later_succeeds(
    nc: Client, eventhandler: InProcessEventHandler
) -> None:
    js = nc.jetstream()
    await js.delete_stream(STREAM)
    event = make_event(20)

    reply = await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(event)]))

    assert reply["stored"] == [] and reply["failed"][0]["id"] == event.id
    with pytest.raises(ServiceErrorReply) as unavailable:
        await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {})
    assert unavailable.value.code == "500" and "stream not found" in unavailable.value.description
    assert "no response from stream" in reply["failed"][0]["error"]
    with pytest.raises(NotFoundError):
        await js.stream_info(STREAM)


async def test_setting_an_unknown_worker_is_404_and_lists_the_known_workers(
    nc: Client, eventhandler: InProcessEventHandler
) -> None:
    await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "jira", "events": ["incident.created"]})  # known: fine

    with pytest.raises(ServiceErrorReply) as unknown:
        await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "jirra", "events": ["incident.created"]})

    assert unknown.value.code == "404"
    assert unknown.value.description == "unknown worker: 'jirra' (known workers: jira, slack, zendesk)"
    with pytest.raises(NotFoundError):
        await nc.jetstream().consumer_info(STREAM, "jirra")  # no consumer that nobody reads


async def test_known_workers_come_from_the_file_and_the_consumers(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    file = tmp_path / "subscriptions.toml"
    file.write_text((ROOT / "config/subscriptions.toml").read_text() + '[workers.webhooks]\nevents = ["created"]\n')
    handler = await InProcessEventHandler(settings_for(nats_server.url, file)).start()
    try:
        js = nc.jetstream()
        await js.delete_consumer(STREAM, "webhooks")
        await js.delete_consumer(STREAM, "zendesk")

        listed = await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {})
        assert listed == {**SHIPPED, "webhooks": [], "zendesk": []}  # known, but no consumer: receives nothing

        reply = await call(nc, SUBSCRIPTIONS_SET_SUBJECT, {"worker": "webhooks", "events": ["incident.resolved"]})
        assert reply == {"worker": "webhooks", "events": ["incident.resolved"]}
        assert (await call(nc, SUBSCRIPTIONS_GET_SUBJECT, {}))["webhooks"] == ["incident.resolved"]
    finally:
        await handler.stop()
