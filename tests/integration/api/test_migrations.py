"""The schema lives in alembic only: it upgrades, matches the query tables, and downgrades cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from services.api.storage.tables import metadata
from tests.support.database import downgrade, migrate


async def _inspect(url: str) -> tuple[set[str], list[Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def work(sync_connection: sa.Connection) -> tuple[set[str], list[Any]]:
                tables = set(sa.inspect(sync_connection).get_table_names())
                diff = compare_metadata(MigrationContext.configure(sync_connection), metadata)
                return tables, diff

            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def _search_storage(difference: Any) -> bool:
    if isinstance(difference, tuple) and difference[0] == "remove_table":
        return str(difference[1].name).startswith("incident_search")
    if isinstance(difference, tuple) and difference[0] == "remove_column":
        return str(difference[3].name) == "search_text"
    return False


def test_migrations_match_tables_and_downgrade_cleanly(database_url: str) -> None:
    tables, diff = asyncio.run(_inspect(database_url))
    assert {"incidents", "incident_comments", "incident_events", "outbox", "idempotency_keys"} <= tables
    # Index-only differences are fine (indexes exist only in the migration); columns and tables must match,
    # but for the full-text search's own storage (SQLite's FTS5 tables, MariaDB's lower-cased copies).
    assert [d for d in diff if d[0] not in ("add_index", "remove_index") and not _search_storage(d)] == []
    downgrade(database_url)
    tables, _ = asyncio.run(_inspect(database_url))
    assert tables == {"alembic_version"}
    migrate(database_url)
    tables, _ = asyncio.run(_inspect(database_url))
    assert "incidents" in tables
