"""A value the database refuses fails only the request that sent it, never the others committed in its group
(real MariaDB in strict mode, whose VARCHAR and TEXT columns have limits SQLite does not enforce)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import sqlalchemy as sa
from asyncmy.errors import DataError

from services.api.incidents.domain import AlertFields, Incident
from services.api.incidents.events import EventRecorder, Origin
from services.api.storage.db import Db
from services.api.storage.repository import DedupKeyInUse, SqlIncidentRepository
from services.api.storage.tables import incident_events, incidents, outbox
from shared.events import utcnow
from tests.support.database import migrate, new_mysql_database
from tests.support.mariadb import MariaDB

RECORDER = EventRecorder(Origin())
TOO_LONG = "x" * 65  # incidents.integration is VARCHAR(64): no request can send it, a repository caller can


class Grouping(SqlIncidentRepository):
    """Counts the group transactions and the one-by-one fallbacks (a seam of our own class)."""

    groups: list[int]
    one_by_one: int

    async def _insert_group(self, group):  # type: ignore[no-untyped-def]
        self.groups.append(len(group))
        return await super()._insert_group(group)

    async def _apply_changes(self, group):  # type: ignore[no-untyped-def]
        self.groups.append(len(group))
        return await super()._apply_changes(group)

    async def _add_one(self, new):  # type: ignore[no-untyped-def]
        self.one_by_one += 1
        return await super()._add_one(new)


def test_the_migration_keeps_stored_labels_and_makes_room_for_the_largest(mariadb: MariaDB) -> None:
    url = new_mysql_database(mariadb.admin_url, mariadb.sql)
    name = url.rsplit("/", 1)[-1]
    migrate(url, "0004")
    mariadb.sql(
        f"INSERT INTO {name}.incidents (message, status, acknowledged, version, created_at, updated_at, labels) "
        """VALUES ('before', 'unresolved', 'no', 1, 1, 1, '{"team":"café"}')"""
    )
    migrate(url)
    assert mariadb.sql(f"SELECT labels FROM {name}.incidents").strip() == '{"team":"café"}'
    wide = "é" * 40_000  # 80,000 bytes: more than TEXT's 65,535
    mariadb.sql(f"UPDATE {name}.incidents SET labels = '{wide}'")
    assert mariadb.sql(f"SELECT CHAR_LENGTH(labels) FROM {name}.incidents").strip() == "40000"


@pytest.fixture
async def repo(mariadb_url: str) -> AsyncIterator[Grouping]:
    found = Grouping(Db(mariadb_url))
    found.groups, found.one_by_one = [], 0
    await found.db.connect()
    yield found
    await found.db.disconnect()


def refused() -> Incident:
    incident = Incident.open("refused", utcnow())
    incident.integration = TOO_LONG
    return incident


async def stored_messages(repo: Grouping) -> list[str]:
    return sorted(str(r[0]) for r in await repo.db.database.fetch_all(sa.select(incidents.c.message)))


async def test_a_value_the_database_refuses_fails_only_its_own_create(repo: Grouping) -> None:
    writes = [repo.add(Incident.open(f"ok{i}", utcnow()), RECORDER) for i in range(20)]
    writes.insert(7, repo.add(refused(), RECORDER))
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert repo.groups[0] == 21, "the refused create should have shared a group with the others"
    assert isinstance(outcomes.pop(7), DataError)
    assert all(isinstance(o, Incident) and o.id for o in outcomes), outcomes
    assert await stored_messages(repo) == sorted(f"ok{i}" for i in range(20))
    assert await repo.db.database.fetch_val(sa.select(sa.func.count()).select_from(outbox)) == 20


async def test_the_fallback_never_reports_a_committed_create_as_failed(repo: Grouping) -> None:
    """A taken dedup key sends the group one by one; a refused value later in it must not fail those already
    committed by then (a client retrying without an Idempotency-Key would create them twice)."""
    await repo.add(Incident.open("holder", utcnow(), AlertFields(dedup_key="disk")), RECORDER)
    repo.groups.clear()
    writes = [repo.add(Incident.open("dup", utcnow(), AlertFields(dedup_key="disk")), RECORDER)]
    writes += [repo.add(Incident.open(f"ok{i}", utcnow()), RECORDER) for i in range(10)]
    writes += [repo.add(refused(), RECORDER)]
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert repo.groups == [12] and repo.one_by_one == 12
    assert isinstance(outcomes[0], DedupKeyInUse)
    assert isinstance(outcomes[-1], DataError)
    committed = outcomes[1:-1]
    assert all(isinstance(o, Incident) and o.id for o in committed), committed
    assert await stored_messages(repo) == sorted(["holder", *(f"ok{i}" for i in range(10))])


def _comment(text: str) -> Callable[[Incident], None]:
    return lambda incident: incident.comment(text, utcnow())


def _refused_change(incident: Incident) -> None:
    incident.comment("refused", utcnow())
    incident.integration = TOO_LONG


async def test_a_value_the_database_refuses_fails_only_its_own_change(repo: Grouping) -> None:
    created = [await repo.add(Incident.open(f"m{i}", utcnow()), RECORDER) for i in range(4)]
    ids = [incident.id for incident in created if incident.id is not None]
    repo.groups.clear()
    writes = [repo.change(ids[n % 4], _comment(f"c{n}"), RECORDER) for n in range(12)]
    writes.insert(5, repo.change(ids[1], _refused_change, RECORDER))
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert repo.groups[0] == 13, "the refused change should have shared a group with the others"
    assert isinstance(outcomes.pop(5), DataError)
    assert all(isinstance(o, Incident) for o in outcomes), outcomes
    for index, incident_id in enumerate(ids):
        stored = await repo.get(incident_id)
        assert stored is not None and stored.comments == [f"c{n}" for n in range(12) if n % 4 == index]
    events = await repo.db.database.fetch_val(sa.select(sa.func.count()).select_from(incident_events))
    assert events == 4 + 12
