"""Fixtures of the chaos tests: a fresh, migrated MariaDB database on the session's server."""

from __future__ import annotations

import pytest

from tests.support.database import migrated_database
from tests.support.mariadb import MariaDB


@pytest.fixture
def chaos_database_url(mariadb: MariaDB) -> str:
    """Sync on purpose: alembic runs its own event loop, which can't nest in an async test's."""
    return migrated_database(mariadb)
