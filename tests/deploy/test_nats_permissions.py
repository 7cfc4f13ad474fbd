"""The deployed nats.conf in a real nats-server: each user can do its job and nothing more.

The config comes from the rendered ConfigMap; only the cluster block and the listen, http, pid and
store paths are rewritten for one loopback server. Passwords come from the StatefulSet's env,
resolved against the example Secret, so its placeholder values are proven usable too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats import micro
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig

from services.api.console.live import LiveFeed
from services.api.delivery.eventhandler_client import NatsLink
from services.eventhandler.consumers import ConsumerBroker
from services.eventhandler.metrics import Metrics
from services.eventhandler.service import add_consumer_endpoints
from services.eventhandler.streams import ensure_consumers, ensure_streams, ensure_webhook_objects
from services.workers.store import open_bucket
from shared.consumers import feed_open_subject
from shared.events import STREAM
from shared.jetstream import (
    ADVISORY_CONSUMER,
    ADVISORY_STREAM,
    DEADLETTER_STREAM,
    DEADLETTERS_LIST_SUBJECT,
    DEADLETTERS_REDRIVE_SUBJECT,
    PUBLISH_SUBJECT,
    SUBSCRIPTIONS_GET_SUBJECT,
    SUBSCRIPTIONS_SET_SUBJECT,
    refs_bucket,
)
from shared.natsconn import NatsSettings, inbox_prefix
from tests.deploy.manifests import example_secrets, render
from tests.deploy.natsconf import DeployedNats, deployed_conf, localize, start_deployed_nats
from tests.support.polling import eventually

DENIED_WAIT = 0.5
"""How long a JetStream call whose request the server dropped waits for its (missing) reply."""


@pytest.fixture(scope="module")
def deployed_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedNats]:
    server = start_deployed_nats(render(), tmp_path_factory.mktemp("deployed-nats"), example_secrets())
    try:
        yield server
    finally:
        server.stop()


@dataclass
class User:
    nc: Client
    js: JetStreamContext
    errors: list[str] = field(default_factory=list)

    async def violation(self, action: str, subject: str) -> None:
        """Wait for the server's `Permissions Violation for <action> to "<subject>"`."""
        wanted = f'permissions violation for {action.lower()} to "{subject.lower()}"'

        async def seen() -> bool:
            return any(wanted in e.lower() for e in self.errors)

        await eventually(seen, timeout=5, what=f"{action} {subject} to be refused; got {self.errors}")

    def clean(self) -> None:
        assert not self.errors, self.errors


@pytest.fixture
async def login(deployed_nats: DeployedNats) -> AsyncIterator[object]:
    clients: list[Client] = []

    async def connect(user: str, password: str | None = None) -> User:
        found: list[str] = []

        async def on_error(exc: Exception) -> None:
            found.append(str(exc))

        nc = await nats.connect(
            deployed_nats.url,
            user=user,
            password=password if password is not None else deployed_nats.passwords[user],
            error_cb=on_error,
            allow_reconnect=False,
            name=f"deploy-test-{user}",
            inbox_prefix=inbox_prefix(user),  # as the services connect (shared/natsconn.py)
        )
        clients.append(nc)
        return User(nc, nc.jetstream(timeout=DENIED_WAIT), found)

    yield connect
    for nc in clients:
        await nc.close()


async def as_user(login: object, user: str) -> User:
    assert callable(login)
    result = await login(user)
    assert isinstance(result, User)
    return result


async def setup_streams(login: object) -> User:
    """The event handler's own start-up, run as the eventhandler user."""
    eventhandler = await as_user(login, "eventhandler")
    eventhandler.js = eventhandler.nc.jetstream(timeout=5)
    await ensure_streams(eventhandler.js, 1)
    await ensure_consumers(
        eventhandler.nc,
        eventhandler.js,
        {"jira": ["incident.created", "incident.resolved"], "slack": ["incident.created"]},
    )
    eventhandler.clean()
    return eventhandler


async def consumer_broker(eventhandler: User) -> micro.Service:
    """The event handler's consumer endpoints (eventhandler.consumers.>), served as the eventhandler user."""
    service = await micro.add_service(eventhandler.nc, name="eventhandler", version="0.0.1")
    broker = ConsumerBroker(eventhandler.nc, eventhandler.js)
    await add_consumer_endpoints(service.add_group(name="eventhandler"), broker, Metrics())
    return service


async def message_count(login: object, stream: str) -> int:
    admin = await as_user(login, "admin")
    info = await admin.js.stream_info(stream)
    return info.state.messages


async def test_api_cannot_write_events_or_state(login: object) -> None:
    await setup_streams(login)
    before = await message_count(login, STREAM)
    api = await as_user(login, "api")
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await api.js.publish("incident.created", b"{}")
    await api.violation("publish", "incident.created")
    for subject in ("deadletter.jira", "$KV.refs-jira.incident.1", f"$JS.API.STREAM.DELETE.{STREAM}"):
        await api.nc.publish(subject, b"{}")
        await api.violation("publish", subject)
    for subject in ("$JS.API.CONSUMER.MSG.NEXT.INCIDENTS.jira", "$JS.ACK.INCIDENTS.jira.1.1.1.1.1.0"):
        await api.nc.publish(subject, b"")
        await api.violation("publish", subject)
    await api.nc.subscribe("incident.>")
    await api.violation("subscription", "incident.>")
    assert await message_count(login, STREAM) == before


async def test_api_requests_every_eventhandler_endpoint(login: object) -> None:
    eventhandler = await as_user(login, "eventhandler")
    service = await micro.add_service(eventhandler.nc, name="eventhandler", version="0.0.1")
    group = service.add_group(name="eventhandler")

    async def echo(request: micro.Request) -> None:
        await request.respond(b"echo:" + request.data)

    for name in ("publish", "subscriptions.get", "subscriptions.set", "deadletters.list", "deadletters.redrive"):
        await group.add_endpoint(name=name.replace(".", "-"), subject=name, handler=echo)
    api = await as_user(login, "api")
    subjects = [
        PUBLISH_SUBJECT,
        SUBSCRIPTIONS_GET_SUBJECT,
        SUBSCRIPTIONS_SET_SUBJECT,
        DEADLETTERS_LIST_SUBJECT,
        DEADLETTERS_REDRIVE_SUBJECT,
    ]
    for subject in subjects:
        reply = await api.nc.request(subject, b"x", timeout=2)
        assert reply.data == b"echo:x", subject
    admin = await as_user(login, "admin")
    ping = await admin.nc.request("$SRV.PING.eventhandler", b"", timeout=2)
    assert b'"name":"eventhandler"' in ping.data.replace(b" ", b""), "`nats micro ls` finds it"
    await service.stop()
    api.clean()
    eventhandler.clean()


async def test_eventhandler_owns_streams_consumers_and_events(login: object) -> None:
    eventhandler = await setup_streams(login)
    await ensure_streams(eventhandler.js, 1)  # again: the update path
    ack = await eventhandler.js.publish("incident.created", b"{}", stream=STREAM)
    assert ack.stream == STREAM
    dead = await eventhandler.js.publish("deadletter.jira", b"{}", stream=DEADLETTER_STREAM)
    assert dead.stream == DEADLETTER_STREAM
    message = await eventhandler.js.get_msg(STREAM, seq=ack.seq)
    assert message.subject == "incident.created"
    info = await eventhandler.js.consumer_info(STREAM, "jira")
    assert info.config.durable_name == "jira"
    await eventhandler.js.delete_consumer(STREAM, "slack")
    await ensure_consumers(eventhandler.nc, eventhandler.js, {"slack": ["incident.created"]})
    await eventhandler.nc.publish("$KV.refs-jira.incident.1", b"{}")
    await eventhandler.violation("publish", "$KV.refs-jira.incident.1")


async def test_eventhandler_reads_the_stored_advisories_a_worker_causes(login: object) -> None:
    eventhandler = await setup_streams(login)
    await eventhandler.js.publish("incident.resolved", b"{}", stream=STREAM)
    jira = await as_user(login, "jira")
    subscription = await jira.js.pull_subscribe_bind("jira", stream=STREAM)
    jira.js = jira.nc.jetstream(timeout=5)
    while True:
        (msg,) = await subscription.fetch(1, timeout=5)
        if msg.subject == "incident.resolved":
            break
        await msg.ack()
    await msg.term()

    # Stored while nobody listens: the event handler reads it from its stream when it gets to it.
    advisories = await eventhandler.js.pull_subscribe_bind(ADVISORY_CONSUMER, ADVISORY_STREAM)
    (advisory,) = await advisories.fetch(1, timeout=5)
    assert advisory.subject == f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{STREAM}.jira"
    assert json.loads(advisory.data)["stream_seq"] == msg.metadata.sequence.stream
    await advisory.ack_sync()
    await advisories.unsubscribe()
    eventhandler.clean()
    jira.clean()


async def test_each_user_reads_only_its_own_inbox(login: object, deployed_nats: DeployedNats) -> None:
    """Whoever holds the jira password must not read slack's deliveries, KV answers or replies."""
    eventhandler = await setup_streams(login)
    await eventhandler.js.publish("incident.created", b'{"secret": "slack delivery"}', stream=STREAM)
    jira = await as_user(login, "jira")
    overheard: list[Msg] = []

    async def overhear(msg: Msg) -> None:
        overheard.append(msg)

    for pattern in ("_INBOX.>", "_INBOX_slack.>", "_INBOX_eventhandler.>", "_INBOX_api.>", ">"):
        await jira.nc.subscribe(pattern, cb=overhear)
        await jira.violation("subscription", pattern)
    slack = await as_user(login, "slack")
    slack.js = slack.nc.jetstream(timeout=5)
    subscription = await slack.js.pull_subscribe_bind("slack", stream=STREAM)
    (delivery,) = await subscription.fetch(1, timeout=5)
    assert delivery.data == b'{"secret": "slack delivery"}' and delivery.subject == "incident.created"
    await delivery.ack_sync()
    await (await open_bucket(slack.js, "slack")).put("incident.1", b"slack-ref")
    await jira.nc.flush()
    assert overheard == []
    await subscription.unsubscribe()
    slack.clean()

    # A default `_INBOX` prefix gets no JetStream answer at all: the server refuses to deliver it.
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    stray = await nats.connect(
        deployed_nats.url,
        user="jira",
        password=deployed_nats.passwords["jira"],
        allow_reconnect=False,
        error_cb=on_error,
    )
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await stray.jetstream(timeout=DENIED_WAIT).consumer_info(STREAM, "jira")
        assert any('subscription to "_inbox.' in e.lower() for e in errors), errors
    finally:
        await stray.close()


async def test_worker_reads_its_own_consumer(login: object) -> None:
    eventhandler = await setup_streams(login)
    for _ in range(4):
        await eventhandler.js.publish("incident.created", b"{}", stream=STREAM)
    jira = await as_user(login, "jira")
    jira.js = jira.nc.jetstream(timeout=5)
    info = await jira.js.consumer_info(STREAM, "jira")
    assert info.name == "jira"
    subscription = await jira.js.pull_subscribe_bind(consumer="jira", stream=STREAM)
    messages = await subscription.fetch(4, timeout=5)
    assert len(messages) == 4
    await messages[0].ack()
    await messages[1].in_progress()
    await messages[1].ack()
    await messages[2].nak(delay=0.05)
    await messages[3].term()

    async def redelivered() -> bool:
        (msg,) = await subscription.fetch(1, timeout=5)
        await msg.ack_sync()
        return msg.metadata.num_delivered >= 2

    await eventually(redelivered, timeout=10, what="the nak'd event to come back")
    await subscription.unsubscribe()
    jira.clean()


async def test_worker_cannot_touch_another_workers_consumer_or_events(login: object) -> None:
    eventhandler = await setup_streams(login)
    await eventhandler.js.publish("incident.created", b"{}", stream=STREAM)
    jira = await as_user(login, "jira")
    stolen = await jira.js.pull_subscribe_bind(consumer="slack", stream=STREAM)
    with pytest.raises(nats.errors.TimeoutError):
        await stolen.fetch(1, timeout=DENIED_WAIT)
    await jira.violation("publish", f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.slack")
    with pytest.raises(nats.errors.TimeoutError):
        await jira.js.consumer_info(STREAM, "slack")
    await jira.violation("publish", f"$JS.API.CONSUMER.INFO.{STREAM}.slack")
    with pytest.raises(nats.errors.TimeoutError):
        await jira.js.delete_consumer(STREAM, "jira")
    await jira.violation("publish", f"$JS.API.CONSUMER.DELETE.{STREAM}.jira")
    with pytest.raises(nats.errors.TimeoutError):
        await jira.js.add_consumer(STREAM, ConsumerConfig(durable_name="jira2"))
    forbidden = ("incident.created", "deadletter.jira", "eventhandler.publish", "$JS.ACK.INCIDENTS.slack.1.1.1.1.1.0")
    for subject in forbidden:
        await jira.nc.publish(subject, b"{}")
        await jira.violation("publish", subject)


async def test_worker_owns_its_bucket_only(login: object) -> None:
    jira = await as_user(login, "jira")
    jira.js = jira.nc.jetstream(timeout=5)
    kv = await open_bucket(jira.js, "jira")  # creates it on the first run
    kv = await open_bucket(jira.js, "jira")  # binds on the next
    revision = await kv.create("incident.1", b"a")
    revision = await kv.update("incident.1", b"b", last=revision)
    await kv.put("error.7", b"boom")
    await kv.purge("error.7")
    entry = await kv.get("incident.1")
    assert entry.value == b"b" and entry.revision == revision
    jira.clean()

    slack_owner = await as_user(login, "slack")
    slack_owner.js = slack_owner.nc.jetstream(timeout=5)
    slack_kv = await open_bucket(slack_owner.js, "slack")
    await slack_kv.put("incident.1", b"slack")
    slack_owner.clean()

    jira.js = jira.nc.jetstream(timeout=DENIED_WAIT)
    with pytest.raises(nats.errors.TimeoutError):
        await jira.js.key_value(refs_bucket("slack"))
    await jira.violation("publish", "$JS.API.STREAM.INFO.KV_refs-slack")
    with pytest.raises(nats.errors.TimeoutError):
        await jira.js.create_key_value(KeyValueConfig(bucket="refs-other"))
    await jira.violation("publish", "$JS.API.STREAM.CREATE.KV_refs-other")
    await jira.nc.publish("$KV.refs-slack.incident.1", b"overwrite")
    await jira.violation("publish", "$KV.refs-slack.incident.1")


async def test_api_and_eventhandler_read_the_worker_buckets(login: object) -> None:
    jira = await as_user(login, "jira")
    jira.js = jira.nc.jetstream(timeout=5)
    revisions = {"jira": await (await open_bucket(jira.js, "jira")).put("incident.42", b"PROJ-1")}
    # A bucket with direct gets: reads go to $JS.API.DIRECT.GET instead of STREAM.MSG.GET.
    zendesk = await as_user(login, "zendesk")
    zendesk.js = zendesk.nc.jetstream(timeout=5)
    direct = await zendesk.js.create_key_value(KeyValueConfig(bucket=refs_bucket("zendesk"), direct=True))
    revisions["zendesk"] = await direct.put("incident.42", b"ZD-1")
    zendesk.clean()
    for reader in ("api", "eventhandler"):
        user = await as_user(login, reader)
        user.js = user.nc.jetstream(timeout=5)
        for worker, value in (("jira", b"PROJ-1"), ("zendesk", b"ZD-1")):
            kv = await user.js.key_value(refs_bucket(worker))
            assert (await kv.get("incident.42")).value == value
            assert (await kv.get("incident.42", revision=revisions[worker])).value == value
        user.clean()
    api = await as_user(login, "api")
    api.js = api.nc.jetstream(timeout=DENIED_WAIT)
    kv = await api.js.key_value(refs_bucket("jira"))
    with pytest.raises(nats.errors.TimeoutError):
        await kv.put("incident.42", b"forged")
    await api.violation("publish", "$KV.refs-jira.incident.42")


async def test_api_follows_incidents_for_the_console_and_nothing_more(login: object) -> None:
    """The console's live feed (a consumer the event handler makes, flow control included) runs as the api user."""
    eventhandler = await setup_streams(login)
    broker = await consumer_broker(eventhandler)
    api = await as_user(login, "api")
    link = NatsLink(NatsSettings(servers=[api.nc.connected_url.geturl() if api.nc.connected_url else ""]))
    link.nc = api.nc
    messages = await LiveFeed(link, catchup_max=10_000).open("ops", None)
    ready = await anext(messages)
    assert ready.event == "ready"
    body = b'{"padding": "' + b"x" * 4000 + b'"}'
    count = 600  # 2.4 MB: more than the server sends before it asks for a flow control reply
    for _ in range(count):
        await eventhandler.js.publish("incident.created", body, stream=STREAM)
    async with asyncio.timeout(60):  # without flow control replies the consumer stalls here
        received = [await anext(messages) for _ in range(count)]
    assert [m.event for m in received] == ["incident"] * count
    sequences = [int(m.id or 0) for m in received]
    assert sequences == list(range(sequences[0], sequences[0] + count))
    admin = await as_user(login, "admin")
    assert any(c.name.startswith("feed-api-") for c in await admin.js.consumers_info(STREAM))
    await messages.aclose()
    assert not [c.name for c in await admin.js.consumers_info(STREAM) if c.name.startswith("feed-api-")]
    api.clean()

    api.js = api.nc.jetstream(timeout=DENIED_WAIT)
    with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
        await api.js.add_consumer(STREAM, ConsumerConfig(durable_name="api-durable"))
    with pytest.raises(nats.errors.TimeoutError):
        await api.js.delete_consumer(STREAM, "jira")
    await api.violation("publish", f"$JS.API.CONSUMER.DELETE.{STREAM}.jira")
    names = {c.name for c in await admin.js.consumers_info(STREAM)}
    assert "api-durable" not in names and "jira" in names
    await broker.stop()


HIJACK_TARGETS = ("$KV.refs-jira.incident.1", "$KV.webhook-endpoints.endpoint.0000000000000000", "deadletter.jira")


@pytest.mark.parametrize("user", ["api", "webhooks"])
async def test_api_and_webhooks_users_cannot_create_a_consumer_delivering_into_kv_or_deadletters(
    login: object, user: str
) -> None:
    """Neither directly (no consumer create right at all) nor through the event handler (it refuses any deliver
    subject outside the requester's own inbox)."""
    eventhandler = await setup_streams(login)
    await ensure_webhook_objects(eventhandler.js, 1)
    await open_bucket(eventhandler.js, "jira")
    before = {s: await message_count(login, s) for s in ("KV_refs-jira", "KV_webhook-endpoints", DEADLETTER_STREAM)}
    broker = await consumer_broker(eventhandler)
    intruder = await as_user(login, user)
    admin = await as_user(login, "admin")
    for stream in (STREAM, "KV_webhook-endpoints"):
        for target in HIJACK_TARGETS:
            for config in (
                ConsumerConfig(deliver_subject=target),
                ConsumerConfig(name="hijack", deliver_subject=target),
                ConsumerConfig(durable_name="hijack", deliver_subject=target),
            ):
                with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
                    await intruder.js.add_consumer(stream, config)
            reply = await intruder.nc.request(
                feed_open_subject(user), json.dumps({"deliver_subject": target, "start_seq": 1}).encode(), timeout=5
            )
            assert (reply.headers or {}).get("Nats-Service-Error-Code") == "400", reply.headers
    await intruder.violation("publish", f"$JS.API.CONSUMER.CREATE.{STREAM}")
    await intruder.violation("publish", f"$JS.API.CONSUMER.CREATE.{STREAM}.hijack")
    # Nor may one ask for another user's feed, whose deliver subject would be that user's inbox.
    other = "webhooks" if user == "api" else "api"
    await intruder.nc.publish(feed_open_subject(other), b"{}")
    await intruder.violation("publish", feed_open_subject(other))

    await eventhandler.js.publish("incident.created", b"{}", stream=STREAM)
    for stream in (STREAM, "KV_webhook-endpoints"):
        for consumer in await admin.js.consumers_info(stream):
            deliver = consumer.config.deliver_subject
            assert deliver is None or deliver.startswith("_INBOX_"), consumer.config
    assert {s: await message_count(login, s) for s in before} == before
    await broker.stop()


async def test_admin_can_do_everything(login: object) -> None:
    await setup_streams(login)
    admin = await as_user(login, "admin")
    admin.js = admin.nc.jetstream(timeout=5)
    await admin.js.add_stream(name="ADMIN_CHECK", subjects=["admin.check.>"])
    await admin.js.publish("admin.check.1", b"x")
    await admin.js.publish("incident.created", b"{}", stream=STREAM)
    await admin.js.add_consumer(STREAM, ConsumerConfig(durable_name="admin-probe"))
    await admin.js.delete_consumer(STREAM, "admin-probe")
    kv = await open_bucket(admin.js, "slack")
    await kv.put("incident.9", b"x")
    await admin.js.delete_stream("ADMIN_CHECK")
    sub = await admin.nc.subscribe("incident.>")
    await sub.unsubscribe()
    admin.clean()


async def test_system_user_sees_the_servers(login: object) -> None:
    system = await as_user(login, "sys")
    reply = await system.nc.request("$SYS.REQ.SERVER.PING", b"", timeout=2)
    assert b"server" in reply.data
    system.clean()


async def test_wrong_or_missing_passwords_are_refused(deployed_nats: DeployedNats) -> None:
    for user, password in (("api", "wrong"), ("nobody", "x")):
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(
                deployed_nats.url, user=user, password=password, allow_reconnect=False, max_reconnect_attempts=0
            )
    with pytest.raises((nats.errors.Error, OSError)):
        await nats.connect(deployed_nats.url, allow_reconnect=False, max_reconnect_attempts=0)


def test_the_local_config_keeps_every_permission(tmp_path: Path) -> None:
    objects = render()
    conf = deployed_conf(objects)
    local = localize(conf, tmp_path, 4222, 8222).conf
    accounts = conf[conf.index("system_account") :]
    assert accounts in local, "only the cluster block and listen/http/pid/store lines may change"
