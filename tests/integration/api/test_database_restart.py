"""MariaDB SIGKILLed and restarted (same port, same data) while each long-lived path holds a connection.

Each test places the kill inside a transaction of the path under test, then checks that the path
works again once the database is back, without a restart of the API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from nats.aio.client import Client

from services.api.app import build_components, create_app
from services.api.settings import ApiSettings
from shared.natsconn import NatsSettings
from tests.fakes.eventhandler import HeldEventHandler
from tests.support.database import migrate, new_mysql_database
from tests.support.mariadb import MariaDB
from tests.support.polling import eventually
from tests.support.processes import NatsServer
from tests.support.stack import assert_stream_matches_event_log, outbox_size

RELAYED_WITHIN_SECONDS = 30.0


@pytest.fixture
def own_mariadb(tmp_path: Path) -> Iterator[MariaDB]:
    """A MariaDB of this test's own, so killing it disturbs no other test."""
    server = MariaDB(tmp_path / "mariadb").start()
    yield server
    server.stop()


@pytest.fixture
def own_database_url(own_mariadb: MariaDB) -> str:
    url = new_mysql_database(own_mariadb.admin_url, own_mariadb.sql)
    migrate(url)
    return url


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
