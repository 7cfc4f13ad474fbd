"""The relay against a real nats-server and event handler: bounded requests, parked incidents, supervision."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from databases import Database
from litestar.testing import AsyncTestClient
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.api.app import build_components, create_app
from services.api.settings import ApiSettings
from services.api.storage.db import Db, is_lock_conflict, to_micros
from services.api.storage.tables import incident_events, outbox
from shared.events import EventType, encode_event, utcnow
from shared.jetstream import PUBLISH_SUBJECT
from shared.natsconn import NatsSettings
from shared.relay import MAX_EVENT_BYTES, MAX_REQUEST_BYTES, NATS_MAX_PAYLOAD
from tests.fakes.eventhandler import OlderEventHandler
from tests.integration.api.conftest import api_settings
from tests.integration.eventhandler.support import InProcessEventHandler, settings_for
from tests.support.metrics import sample
from tests.support.polling import eventually
from tests.support.processes import NatsServer
from tests.support.stack import assert_stream_matches_event_log, outbox_size, stream_events
from tests.unit.eventhandler.factory import make_event


def relay_settings(database_url: str, nats_url: str) -> ApiSettings:
    return ApiSettings(
        database_url=database_url,
        nats=NatsSettings(servers=[nats_url]),
        relay_retry_max_seconds=0.5,
        relay_stall_seconds=2.0,
    )


@contextlib.asynccontextmanager
async def api(settings: ApiSettings) -> AsyncIterator[Any]:
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


def eventhandler(nats_server: NatsServer) -> InProcessEventHandler:
    """Started and stopped by `async with`."""
    return InProcessEventHandler(settings_for(nats_server.url))


async def create(client: Any, message: str = "disk full") -> int:
    response = await client.post("/incident/", json={"message": message})
    assert response.status_code == 200, response.text
    return int(response.json()["ID"])


async def stored_types(nc: Client) -> list[tuple[int, str]]:
    return [(s.event.incident_id, s.event.type) for s in await stream_events(nc.jetstream())]


async def stored_by_incident(nc: Client) -> dict[int, list[str]]:
    """Each incident's event types in stream order (incidents in one request are stored concurrently)."""
    found: dict[int, list[str]] = {}
    for incident, type_ in await stored_types(nc):
        found.setdefault(incident, []).append(type_)
    return found


async def add_outbox_row(database_url: str, incident_id: int, payload: bytes, *, dangling: bool = False) -> int:
    """An outbox row as an older version (or a damaged database) may have left it."""
    db = Db(database_url)
    await db.connect()
    try:
        now = to_micros(utcnow())
        event_row_id = 10_000_000
        if not dangling:
            event_row_id = await db.database.execute(
                incident_events.insert().values(
                    event_id=_event_id(payload),
                    incident_id=incident_id,
                    version=1,
                    type="incident.created",
                    actor="older-version",
                    payload=payload.decode(errors="replace"),
                    created_at=now,
                )
            )
        return int(
            await db.database.execute(
                outbox.insert().values(event_row_id=event_row_id, incident_id=incident_id, created_at=now)
            )
        )
    finally:
        await db.disconnect()


def _event_id(payload: bytes) -> str:
    try:
        return str(msgspec.json.decode(payload, type=dict[str, Any])["id"])
    except (msgspec.DecodeError, KeyError):
        return "not-json-" + str(len(payload))


async def delete_outbox_row(database_url: str, row_id: int) -> None:
    db = Db(database_url)
    await db.connect()
    try:
        await db.database.execute(outbox.delete().where(outbox.c.id == row_id))
    finally:
        await db.disconnect()


def oversized_event() -> bytes:
    return encode_event(make_event(4242, message="x" * (MAX_EVENT_BYTES + 1000)))


@pytest.mark.parametrize("row", ["oversized", "not-json"])
async def test_an_unsendable_outbox_row_parks_only_its_own_incident(
    database_url: str, nats_server: NatsServer, nc: Client, row: str
) -> None:
    payload = oversized_event() if row == "oversized" else b'{"id": "broken", "type": "incident.created"'
    await add_outbox_row(database_url, 4242, payload)  # first in the outbox, ahead of everything below

    async with eventhandler(nats_server), api(relay_settings(database_url, nats_server.url)) as client:
        first, second = await create(client, "first"), await create(client, "second")
        assert (await client.post(f"/incident/{first}/acknowledge")).status_code == 200

        async def others_delivered() -> bool:
            return await stored_by_incident(nc) == {
                first: ["incident.created", "incident.acknowledged"],
                second: ["incident.created"],
            }

        await eventually(others_delivered, timeout=30, what="the other incidents' events in the stream")

        async def only_the_unsendable_left() -> bool:
            return await outbox_size(database_url) == 1  # it stays, for an operator to see

        await eventually(only_the_unsendable_left, timeout=10, what="the delivered rows to leave the outbox")

        ready = await client.get("/health/ready")
        assert ready.status_code == 200  # shown, not a reason to take the API out of service
        checks = ready.json()["checks"]
        assert checks["relay"] == "parked"
        assert [p["incident_id"] for p in checks["relay_parked"]] == [4242]
        expected = "exceeds the limit" if row == "oversized" else "refused by the event handler (400)"
        assert expected in checks["relay_parked"][0]["reason"]
        assert sample((await client.get("/metrics")).text, "incidents_api_outbox_parked_incidents") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # ~50 MB of events: one backend is enough
async def test_a_write_that_would_make_an_event_too_large_is_413_and_every_accepted_write_is_delivered(
    database_url: str, nats_server: NatsServer, nc: Client
) -> None:
    comment = "c" * 10_000
    async with eventhandler(nats_server), api(relay_settings(database_url, nats_server.url)) as client:
        big, small = await create(client, "growing"), await create(client, "small")
        put = await client.put(f"/incident/{big}", json={"comments": [comment] * 100})
        assert put.status_code == 200, put.text

        too_much = await client.put(f"/incident/{big}", json={"comments": [comment] * 5})

        assert too_much.status_code == 413
        body = too_much.json()
        assert body["status"] == "Request Entity Too Large"
        assert f"at most {MAX_EVENT_BYTES}" in body["error"]
        assert len((await client.get(f"/incident/{big}")).json()["comments"]) == 100  # nothing of it was written
        assert (await client.post(f"/incident/{small}/acknowledge")).status_code == 200

        async def drained() -> bool:
            return await outbox_size(database_url) == 0

        await eventually(drained, timeout=120, interval=0.5, what="the outbox to drain")
        counts = await assert_stream_matches_event_log(nc.jetstream(), database_url)
        assert counts["events"] == 103


async def test_events_adding_up_past_max_payload_go_out_in_several_requests(
    database_url: str, nats_server: NatsServer, nc: Client
) -> None:
    message = "m" * 9_990
    async with api(api_settings(database_url)) as offline:  # NATS unreachable: everything waits in the outbox
        ids = [await create(offline, f"{n} {message}") for n in range(120)]
    requests: list[int] = []

    async def seen(msg: Msg) -> None:
        requests.append(len(msg.data))

    monitor = await nc.subscribe(PUBLISH_SUBJECT, cb=seen)
    async with eventhandler(nats_server), api(relay_settings(database_url, nats_server.url)):

        async def delivered() -> bool:
            return await outbox_size(database_url) == 0

        await eventually(delivered, timeout=60, what="the outbox to drain")
    await monitor.unsubscribe()

    assert sorted(i for i, _ in await stored_types(nc)) == ids
    assert sum(requests) > NATS_MAX_PAYLOAD
    assert len(requests) >= 2
    assert max(requests) <= MAX_REQUEST_BYTES


async def test_an_unexpected_failure_is_survived_and_readiness_fails_while_the_relay_is_stuck(
    database_url: str, nats_server: NatsServer, nc: Client
) -> None:
    async with api(api_settings(database_url)) as offline:
        incident = await create(offline)
    # An outbox row whose event row is missing: reading the claim fails in a way the relay can't know.
    dangling = await add_outbox_row(database_url, incident, b"", dangling=True)

    async with eventhandler(nats_server), api(relay_settings(database_url, nats_server.url)) as client:

        async def not_ready() -> dict[str, Any]:
            ready = await client.get("/health/ready")
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["relay"] == "stalled", ready.text
            body: dict[str, Any] = ready.json()
            return body

        body = await eventually(not_ready, timeout=30, what="readiness to report the stuck relay")
        assert "KeyError" in body["checks"]["relay_last_error"]
        metrics = (await client.get("/metrics")).text
        assert (sample(metrics, "incidents_api_relay_errors_total") or 0) > 0

        await delete_outbox_row(database_url, dangling)  # the operator repairs it; the relay was still there

        async def ready_again() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await eventually(ready_again, timeout=30, what="readiness to recover")
        assert await stored_types(nc) == [(incident, "incident.created")]
        assert await outbox_size(database_url) == 0


async def test_a_rejected_event_stays_blocks_only_its_incident_and_is_delivered_once_accepted(
    database_url: str, nats_server: NatsServer, nc: Client
) -> None:
    older = await OlderEventHandler(nc, unknown_types={EventType.COMMENTED.subject}).start()
    async with api(relay_settings(database_url, nats_server.url)) as client:
        blocked, other = await create(client, "blocked"), await create(client, "other")
        await client.post(f"/incident/{blocked}/comments", json={"comment": "the older handler can't take this"})
        await client.post(f"/incident/{blocked}/acknowledge")
        await client.post(f"/incident/{other}/comments", json={"comment": "rejected too"})
        await client.post(f"/incident/{other}/resolve")
        third = await create(client, "unaffected")
        await client.post(f"/incident/{third}/acknowledge")

        async def unaffected_delivered() -> bool:
            return (third, "incident.acknowledged") in await stored_types(nc)

        await eventually(unaffected_delivered, timeout=30, what="the unaffected incident's events")
        assert await stored_by_incident(nc) == {
            blocked: ["incident.created"],
            other: ["incident.created"],
            third: ["incident.created", "incident.acknowledged"],
        }

        async def only_the_held_back_left() -> bool:
            return await outbox_size(database_url) == 4  # rejected events and what follows them stay

        await eventually(only_the_held_back_left, timeout=10, what="the delivered rows to leave the outbox")

        async def parked() -> dict[str, Any]:
            ready = await client.get("/health/ready")
            # Shown, but still ready: one parked incident must not take every API replica out of service.
            assert ready.status_code == 200 and ready.json()["checks"]["relay"] == "parked", ready.text
            body: dict[str, Any] = ready.json()
            return body

        body = await eventually(parked, timeout=10, what="readiness to report the parked incidents")
        assert sorted(p["incident_id"] for p in body["checks"]["relay_parked"]) == [blocked, other]
        assert "unknown event type: incident.commented" in body["checks"]["relay_parked"][0]["reason"]
        rejections = older.requests

        async def retried() -> bool:
            return older.requests > rejections + 1  # retried with backoff while the older handler runs

        await eventually(retried, timeout=20, what="the parked events to be retried")
        assert (sample((await client.get("/metrics")).text, "incidents_api_events_rejected_total") or 0) > 0
        await older.stop()

        async with eventhandler(nats_server):  # the upgraded event handler knows the type

            async def delivered() -> bool:
                return await outbox_size(database_url) == 0

            await eventually(delivered, timeout=30, what="the parked events to be delivered")
            assert (await client.get("/health/ready")).status_code == 200
    events = await stored_by_incident(nc)
    assert events[blocked] == ["incident.created", "incident.commented", "incident.acknowledged"]
    assert events[other] == ["incident.created", "incident.commented", "incident.resolved"]
    await assert_stream_matches_event_log(nc.jetstream(), database_url)


async def real_deadlock(url: str) -> BaseException:
    """Two transactions locking two rows in opposite order: MariaDB rolls one back with error 1213."""
    first, second = Database(url), Database(url)
    await first.connect()
    await second.connect()
    try:
        await first.execute("CREATE TABLE deadlock_probe (id INT PRIMARY KEY)")
        await first.execute("INSERT INTO deadlock_probe VALUES (1), (2)")
        locked = [asyncio.Event(), asyncio.Event()]

        async def lock(db: Database, own: int, other: int) -> None:
            async with db.transaction():
                await db.execute(f"SELECT id FROM deadlock_probe WHERE id = {own} FOR UPDATE")
                locked[own - 1].set()
                await locked[other - 1].wait()
                await db.execute(f"SELECT id FROM deadlock_probe WHERE id = {other} FOR UPDATE")

        outcomes = await asyncio.gather(lock(first, 1, 2), lock(second, 2, 1), return_exceptions=True)
    finally:
        await first.disconnect()
        await second.disconnect()
    [victim] = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    return victim


async def test_a_lock_conflict_with_another_relay_is_claimed_again_at_once_and_is_no_outage(
    mariadb_url: str, nats_server: NatsServer, nc: Client
) -> None:
    deadlock = await real_deadlock(mariadb_url)
    assert is_lock_conflict(deadlock), repr(deadlock)
    assert not is_lock_conflict(OSError("connection refused"))
    async with api(api_settings(mariadb_url)) as offline:
        incidents = [await create(offline, f"disk {n}") for n in range(3)]

    settings = relay_settings(mariadb_url, nats_server.url)
    parts = build_components(settings)
    relay, claim = parts.relay, parts.relay.store.claim
    health_when_claimed_again: list[Any] = []

    def claim_after_a_conflict(limit: int, exclude: Any = ()) -> Any:
        if not health_when_claimed_again:
            health_when_claimed_again.append(None)
            raise deadlock  # as another replica's relay made it, claiming the same rows
        if health_when_claimed_again == [None]:
            health_when_claimed_again.append(relay.health())
        return claim(limit, exclude)

    relay.store.claim = claim_after_a_conflict  # type: ignore[method-assign]
    async with eventhandler(nats_server), AsyncTestClient(create_app(settings, parts)) as client:

        async def delivered() -> bool:
            return {incident for incident, _ in await stored_types(nc)} == set(incidents)

        await eventually(delivered, timeout=30, what="the outbox to be delivered after the conflict")
        metrics = (await client.get("/metrics")).text
    [_, health] = health_when_claimed_again
    assert not health.database_unavailable and health.last_error is None  # readiness never said "unavailable"
    assert (sample(metrics, "incidents_api_relay_failures_total") or 0) == 0
