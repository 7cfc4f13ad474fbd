"""Fixtures shared by every tier: a real nats-server per test, and the two database backends."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
from nats.aio.client import Client

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fakes.zendesk import FakeZendesk
from tests.support.database import migrate, migrated_database, new_mysql_database, sqlite_url
from tests.support.mariadb import MariaDB
from tests.support.processes import NatsServer


class Server(Protocol):
    """Anything a test starts and stops: nats-server, MariaDB, a vendor's fake."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


def running(server: S) -> Iterator[S]:
    """`server` started for as long as the fixture lives, then stopped."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    yield from running(NatsServer(tmp_path / "nats"))


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats_server.connect()
    try:
        yield client
    finally:
        await client.drain()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """One MariaDB server for the session (never skipped: a missing server fails the run)."""
    yield from running(MariaDB(tmp_path_factory.mktemp("mariadb")))


@pytest.fixture
def mariadb_url(mariadb: MariaDB) -> str:
    """A new, migrated database on the session's MariaDB."""
    return migrated_database(mariadb)


@pytest.fixture
def own_mariadb(tmp_path: Path) -> Iterator[MariaDB]:
    """A MariaDB of the test's own, so stopping, killing or restarting it disturbs no other test."""
    yield from running(MariaDB(tmp_path / "mariadb"))


@pytest.fixture
def own_database_url(own_mariadb: MariaDB) -> str:
    return migrated_database(own_mariadb)


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated database, once on SQLite and once on MariaDB."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        server: MariaDB = request.getfixturevalue("mariadb")
        url = new_mysql_database(server.admin_url, server.sql)
    migrate(url)
    return url


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path)
    migrate(url)
    return url


_skipped: list[str] = []


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    yield from running(FakeJira())


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    yield from running(FakeSlack())


@pytest.fixture
def fake_zendesk() -> Iterator[FakeZendesk]:
    yield from running(FakeZendesk())


def webhook_receiver() -> Iterator[WebhookReceiver]:
    yield from running(WebhookReceiver())


receiver = pytest.fixture(webhook_receiver)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: it proves nothing."""
    if os.environ.get("CI") and _skipped:
        print(f"\nCI: {len(_skipped)} tests were skipped, which counts as a failure: {_skipped[:10]}")
        session.exitstatus = 1
