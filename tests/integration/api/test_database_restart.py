"""MariaDB SIGKILLed and restarted (same port, same data) while each long-lived path holds a connection.

Each test places the kill inside a transaction of the path under test, then checks that the path
works again once the database is back, without a restart of the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncmy
import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from nats.aio.client import Client

from services.api import background
from services.api.app import build_components, create_app
from services.api.settings import ApiSettings
from services.api.storage.db import Db, to_micros
from services.api.storage.repository import SqlIncidentRepository
from services.api.storage.tables import idempotency_keys
from services.api.web.metrics import ApiMetrics
from shared.events import utcnow
from shared.natsconn import NatsSettings
from tests.fakes.eventhandler import HeldEventHandler
from tests.support.mariadb import PASSWORD, USER, MariaDB
from tests.support.polling import eventually
from tests.support.processes import NatsServer
from tests.support.services import ApiProcess
from tests.support.stack import assert_stream_matches_event_log, outbox_size

RELAYED_WITHIN_SECONDS = 30.0
ROUTING_KEY = "R0UTINGKEYFORTESTS00000000000001"
BLOCKED_STATEMENTS = (
    "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
    " WHERE COMMAND IN ('Query', 'Execute') AND ID != CONNECTION_ID() AND TIME_MS > 500"
)


def settings(database_url: str, nats_url: str, **overrides: Any) -> ApiSettings:
    return ApiSettings(
        database_url=database_url,
        nats=NatsSettings(servers=[nats_url]),
        relay_retry_max_seconds=0.5,
        **overrides,
    )


async def create(client: Any, message: str) -> int:
    response = await client.post("/incident/", json={"message": message})
    assert response.status_code == 200, response.text
    return int(response.json()["ID"])


async def test_relay_delivers_every_event_after_mariadb_restarts_inside_its_claim(
    own_mariadb: MariaDB, own_database_url: str, nats_server: NatsServer, nc: Client
) -> None:
    url = own_database_url
    config = settings(url, nats_server.url)
    # Acknowledged writes left in the outbox: the API ran while no event handler answered.
    async with AsyncTestClient(create_app(config)) as client:
        for n in range(10):
            incident = await create(client, f"before the restart {n}")
            assert (await client.post(f"/incident/{incident}/comments", json={"comment": "seen"})).status_code == 200
    assert await outbox_size(url) == 20

    handler = await HeldEventHandler(nc).start()
    handler.hold()
    parts = build_components(config)
    parts.client.timeout = 60  # the held request must outlive the restart
    try:
        async with AsyncTestClient(create_app(config, parts)) as client:
            # The relay's first round claims the table's rows (a transaction on MySQL) and waits for the reply.
            await eventually(lambda: _true(handler.waiting > 0), timeout=15, what="the relay to hold its claim")
            own_mariadb.kill()
            handler.release()  # the reply comes; settling the claim meets the dead connection

            async def relay_not_ready() -> bool:
                response = await client.get("/health/ready")
                return response.status_code == 503 and response.json()["checks"]["relay"] == "unavailable"

            await eventually(relay_not_ready, timeout=15, what="readiness to report the relay unavailable")

            own_mariadb.restart()
            returned = time.monotonic()
            later = [await _create_when_back(client, f"after the restart {n}") for n in range(5)]

            async def everything_relayed() -> bool:
                return await outbox_size(url) == 0

            await eventually(everything_relayed, timeout=RELAYED_WITHIN_SECONDS, interval=0.2, what="an empty outbox")
            took = time.monotonic() - returned
            counts = await assert_stream_matches_event_log(nc.jetstream(), url)
            assert counts == {"events": 25, "incidents": 15}, counts
            assert took < RELAYED_WITHIN_SECONDS
            print(f"everything relayed {took:.2f} s after MariaDB listened again")

            async def ready() -> bool:
                response = await client.get("/health/ready")
                return response.status_code == 200 and response.json()["checks"]["relay"] == "ok"

            await eventually(ready, timeout=10, what="readiness to recover")
            assert later
    finally:
        handler.release()
        await handler.stop()


async def _create_when_back(client: Any, message: str) -> int:
    async def created() -> int:
        response = await client.post("/incident/", json={"message": message})
        return int(response.json()["ID"]) if response.status_code == 200 else 0

    return await eventually(created, timeout=30, interval=0.2, what="writes to work again")


async def _true(value: bool) -> bool:
    return value


class RowLock:
    """Another client holding rows FOR UPDATE, so that a path of the API waits inside its own transaction."""

    def __init__(self, server: MariaDB, database_url: str) -> None:
        self._options = {
            "host": "127.0.0.1",
            "port": server.port,
            "user": USER,
            "password": PASSWORD,
            "db": database_url.rsplit("/", 1)[-1],
        }
        self._holder: Any = None

    async def hold(self, table: str, where: str) -> None:
        self._holder = await asyncmy.connect(**self._options)
        async with self._holder.cursor() as cursor:
            await cursor.execute("BEGIN")
            await cursor.execute(f"SELECT * FROM {table} WHERE {where} FOR UPDATE")

    async def wait_for_waiter(self) -> None:
        """Until a statement of the API has waited for the held rows for half a second."""
        watcher = await asyncmy.connect(**self._options)
        try:

            async def waiting() -> bool:
                async with watcher.cursor() as cursor:
                    await cursor.execute(BLOCKED_STATEMENTS)
                    (count,) = await cursor.fetchone()
                return int(count) > 0

            await eventually(waiting, timeout=15, what="a statement of the API to wait for the held rows")
        finally:
            watcher.close()

    def drop(self) -> None:
        if self._holder is not None:
            self._holder.close()


@pytest.fixture
async def row_lock(own_mariadb: MariaDB, own_database_url: str) -> AsyncIterator[RowLock]:
    lock = RowLock(own_mariadb, own_database_url)
    yield lock
    lock.drop()


async def within(seconds: float, request: Any) -> Any:
    """An HTTP call that must answer: an API that lost its last pool connection would never do so."""
    return await asyncio.wait_for(request, seconds)


async def test_group_commit_writes_again_after_mariadb_restarts_inside_its_transaction(
    tmp_path: Path, own_mariadb: MariaDB, own_database_url: str, nats_server: NatsServer, row_lock: RowLock
) -> None:
    api = ApiProcess(tmp_path, own_database_url, nats_server.url).start()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            incident = await create(client, "disk full")
            await row_lock.hold("incidents", f"id = {incident}")
            blocked = asyncio.ensure_future(client.post(f"/incident/{incident}/comments", json={"comment": "on it"}))
            await row_lock.wait_for_waiter()  # the group commit's writer waits inside its transaction
            own_mariadb.kill()
            row_lock.drop()
            assert (await blocked).status_code == 503
            own_mariadb.restart()

            async def writes() -> bool:
                created = await client.post("/incident/", json={"message": "after the restart"})
                commented = await client.post(f"/incident/{incident}/comments", json={"comment": "back"})
                return created.status_code == commented.status_code == 200

            await eventually(writes, timeout=30, interval=0.2, what="creates and changes to commit again")
            assert (await client.get(f"/incident/{incident}")).json()["comments"][-1] == "back"
        # Every connection went back to the pool: closing it at shutdown waits for none that was lost.
        assert api.process.stop(timeout=20) == 0
    finally:
        api.kill()


async def test_auto_resolve_resolves_again_after_mariadb_restarts_inside_its_write(
    tmp_path: Path, own_mariadb: MariaDB, own_database_url: str, nats_server: NatsServer, row_lock: RowLock
) -> None:
    extra = {
        "INTEGRATION_KEYS": f"monitoring:{ROUTING_KEY}",
        "ALERT_AUTO_RESOLVE": "monitoring:3",  # quiet only after the rows are held
    }
    api = ApiProcess(tmp_path, own_database_url, nats_server.url, extra).start()
    trigger = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
    }
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            first = await client.post("/v2/enqueue", json={**trigger, "dedup_key": "first"})
            assert first.status_code == 202, first.text
            await row_lock.hold("incidents", "dedup_key = 'first'")
            await row_lock.wait_for_waiter()  # auto-resolve's write waits inside its transaction
            own_mariadb.kill()
            row_lock.drop()
            own_mariadb.restart()

            async def resolved(key: str) -> bool:
                found = await client.get("/incident/", params={"dedup_key": key})
                return found.status_code == 200 and [i["status"] for i in found.json()["items"]] == ["resolved"]

            async def triggered() -> bool:
                return (await client.post("/v2/enqueue", json={**trigger, "dedup_key": "second"})).status_code == 202

            await eventually(lambda: resolved("first"), timeout=30, interval=0.2, what="the held incident to resolve")
            await eventually(triggered, timeout=30, interval=0.2, what="alerts to be taken again")
            await eventually(lambda: resolved("second"), timeout=30, interval=0.2, what="a new incident to resolve")
        assert api.process.stop(timeout=20) == 0
    finally:
        api.kill()


async def test_housekeeping_prunes_again_after_mariadb_restarts_inside_its_transaction(
    own_mariadb: MariaDB, own_database_url: str, row_lock: RowLock
) -> None:
    db = Db(own_database_url, pool_size=1)
    await db.connect()
    stop = asyncio.Event()
    expired = to_micros(utcnow()) - 2 * background.IDEMPOTENCY_TTL_SECONDS * 1_000_000

    async def add_expired(prefix: str) -> None:
        rows = [
            {"key": f"{prefix}-{n}", "fingerprint": "f", "status_code": 200, "response": "{}", "created_at": expired}
            for n in range(3)
        ]
        await db.database.execute_many(idempotency_keys.insert(), rows)

    async def left(prefix: str) -> int:
        count = sa.select(sa.func.count()).where(idempotency_keys.c.key.like(f"{prefix}-%"))
        return int(await db.database.fetch_val(count) or 0)

    await add_expired("before")
    await row_lock.hold("idempotency_keys", "`key` = 'before-1'")
    metrics = ApiMetrics()
    task = asyncio.create_task(background.housekeeping(SqlIncidentRepository(db), stop, metrics, every=0.2, retry=0.2))
    try:
        await row_lock.wait_for_waiter()  # the prune waits inside its transaction
        own_mariadb.kill()
        row_lock.drop()
        own_mariadb.restart()

        async def reconnected() -> bool:
            await add_expired("after")
            return True

        await eventually(reconnected, timeout=30, interval=0.2, what="the database to take writes")
        await eventually(
            lambda: _none_left(left, "before", "after"), timeout=30, interval=0.2, what="expired keys to be pruned"
        )
        assert metrics.background_errors.value(task="housekeeping") >= 1
    finally:
        stop.set()
        await task
        await db.disconnect()


async def _none_left(left: Any, *prefixes: str) -> bool:
    return all([await left(prefix) == 0 for prefix in prefixes])


async def test_relay_deletes_again_after_mariadb_restarts_while_creates_are_in_flight(
    own_mariadb: MariaDB, own_database_url: str, nats_server: NatsServer, nc: Client
) -> None:
    url = own_database_url
    config = settings(url, nats_server.url)
    handler = await HeldEventHandler(nc).start()
    parts = build_components(config)
    parts.client.timeout = 60
    try:
        async with AsyncTestClient(create_app(config, parts)) as client:
            await eventually(lambda: _true(parts.relay.health().last_error is None), what="a first relay round")
            handler.hold()
            created = [await create(client, f"in flight {n}") for n in range(5)]
            # Handed over in memory: the relay sends them without a claim, and deletes them once stored.
            await eventually(lambda: _true(handler.waiting > 0), timeout=15, what="the relay to send the creates")
            own_mariadb.kill()
            handler.release()  # stored, but the delete meets a database that is gone
            own_mariadb.restart()
            later = await _create_when_back(client, "after the restart")
            await eventually(lambda: _empty(url), timeout=RELAYED_WITHIN_SECONDS, interval=0.2, what="an empty outbox")
            counts = await assert_stream_matches_event_log(nc.jetstream(), url)
            assert counts == {"events": 6, "incidents": 6}, counts
            assert later not in created
    finally:
        handler.release()
        await handler.stop()


async def _empty(url: str) -> bool:
    return await outbox_size(url) == 0


async def test_an_api_started_while_mariadb_is_down_becomes_ready_when_it_returns(
    tmp_path: Path, own_mariadb: MariaDB, own_database_url: str, nats_server: NatsServer
) -> None:
    own_mariadb.stop()
    api = ApiProcess(tmp_path, own_database_url, nats_server.url).start()  # live, not ready
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] == "unavailable"
            own_mariadb.restart()

            async def created() -> bool:
                return (await client.post("/incident/", json={"message": "first"})).status_code == 200

            await eventually(created, timeout=30, interval=0.2, what="writes once MariaDB is back")
            assert api.process.alive()
    finally:
        api.stop()
