"""End-to-end fixtures: the services as processes against a real nats-server and database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
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
    client = await nats_server.connect()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def fakes(
    fake_jira: FakeJira, fake_slack: FakeSlack, fake_zendesk: FakeZendesk
) -> tuple[FakeJira, FakeSlack, FakeZendesk]:
    """The three vendors' fakes, running, for tests that wire all three workers."""
    return fake_jira, fake_slack, fake_zendesk
