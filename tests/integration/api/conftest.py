"""An API app on a fresh database (SQLite and MariaDB), driven through Litestar's HTTP test client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from services.api.app import Components, build_components, create_app
from services.api.settings import ApiSettings, parse_tokens
from services.api.storage.db import Db
from shared.natsconn import NatsSettings
from tests.support.processes import free_port


def api_settings(database_url: str, nats_url: str | None = None, tokens: list[str] | None = None) -> ApiSettings:
    # With no NATS given, point at a closed port: the API must work without NATS.
    return ApiSettings(
        database_url=database_url,
        nats=NatsSettings(servers=[nats_url or f"nats://127.0.0.1:{free_port()}"]),
        tokens=parse_tokens(tokens or []),
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    """A separate connection in the test's own event loop, for looking at what the API wrote."""
    database = Db(database_url)
    await database.connect()
    yield database
    await database.disconnect()


@pytest.fixture
async def components(database_url: str) -> Components:
    return build_components(api_settings(database_url))


@pytest.fixture
async def client(database_url: str, components: Components) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    app = create_app(api_settings(database_url), components)
    async with AsyncTestClient(app) as test_client:
        yield test_client
