"""The API app against a real nats-server holding the endpoints bucket (as the event handler creates it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient
from nats.aio.client import Client

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.eventhandler.streams import ensure_webhook_objects
from shared.natsconn import NatsSettings
from tests.support.polling import eventually
from tests.support.processes import NatsServer


async def webhook_client(
    database_url: str, nats_server: NatsServer, allow_private: bool, max_endpoints: int = 100
) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    settings = ApiSettings(
        database_url=database_url,
        nats=NatsSettings(servers=[nats_server.url]),
        webhook_allow_private=allow_private,
        webhook_secret_overlap=3600.0,
        webhook_max_endpoints=max_endpoints,
    )
    async with AsyncTestClient(create_app(settings)) as client:

        async def connected() -> bool:
            return (await client.get("/webhooks")).status_code == 200

        await eventually(connected, timeout=15, what="the API to reach NATS")
        yield client


@pytest.fixture
async def bucket(nc: Client) -> None:
    await ensure_webhook_objects(nc.jetstream(), 1)


@pytest.fixture
async def client(sqlite_database_url: str, nats_server: NatsServer, bucket: None) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async for c in webhook_client(sqlite_database_url, nats_server, allow_private=False):
        yield c


@pytest.fixture
async def private_client(
    sqlite_database_url: str, nats_server: NatsServer, bucket: None
) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async for c in webhook_client(sqlite_database_url, nats_server, allow_private=True):
        yield c
