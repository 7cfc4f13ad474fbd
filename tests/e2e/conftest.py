"""End-to-end fixtures: the services as processes against a real nats-server and database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from tests.support.processes import NatsServer
from tests.support.stack import Stack


@pytest.fixture
def stack(tmp_path: Path, nats_server: NatsServer, database_url: str) -> Iterator[Stack]:
    pipeline = Stack(tmp_path, nats_server, database_url)
    try:
        yield pipeline
    finally:
        pipeline.stop()


@pytest.fixture
async def js_client(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        yield client
    finally:
        await client.close()
