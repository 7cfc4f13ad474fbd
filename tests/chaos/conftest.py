"""Fixtures of the chaos tests: a fresh, migrated MariaDB database on the session's server."""

from __future__ import annotations

import pytest

from tests.support.database import migrate, new_mysql_database
from tests.support.mariadb import MariaDB


@pytest.fixture
def chaos_database_url(mariadb: MariaDB) -> str:
    """Sync on purpose: alembic runs its own event loop, which can't nest in an async test's."""
    url = new_mysql_database(mariadb.admin_url, mariadb.sql)
    migrate(url)
    return url
