"""Fixtures of the chaos tests: a fresh, migrated MariaDB database on the session's server, or on one of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.database import migrate, new_mysql_database
from tests.support.mariadb import MariaDB


@pytest.fixture
def chaos_database_url(mariadb: MariaDB) -> str:
    """Sync on purpose: alembic runs its own event loop, which can't nest in an async test's."""
    url = new_mysql_database(mariadb.admin_url, mariadb.sql)
    migrate(url)
    return url


@pytest.fixture
def chaos_mariadb(tmp_path: Path) -> Iterator[MariaDB]:
    """A MariaDB of the test's own: the chaos SIGKILLs it, which must disturb no other test."""
    server = MariaDB(tmp_path / "mariadb").start()
    yield server
    server.stop()


@pytest.fixture
def own_chaos_database_url(chaos_mariadb: MariaDB) -> str:
    url = new_mysql_database(chaos_mariadb.admin_url, chaos_mariadb.sql)
    migrate(url)
    return url
