"""Alert storms on the intake's hot path (SQLite and MariaDB): repeats ride the group commit and stay exact,
a resolve among repeats is never undone, and a dedup key belongs to the integration that sent it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine

from services.api.alerts import alertmanager
from services.api.alerts.service import AlertIntake, Outcome
from services.api.app import create_app
from services.api.incidents.events import Origin
from services.api.settings import parse_integration_keys
from services.api.storage import repository
from services.api.storage.db import Db
from services.api.storage.repeats import OpenIncident
from services.api.storage.repository import AlertRepeat, Repeated, SqlIncidentRepository
from services.api.storage.tables import incident_events, incidents
from tests.integration.api.conftest import api_settings
from tests.support.database import downgrade, migrate

GROUP_KEY = '{}:{alertname="DiskFull"}'
ALERTMANAGER = Origin(actor="prometheus")
REPEATS = 200


class CountingRepository(SqlIncidentRepository):
    """Counts the repeats each transaction of the repeat group commit took (a seam of our own class)."""

    repeat_groups: list[int]

    async def _repeat_group(self, group: list[AlertRepeat]) -> list[Repeated | BaseException]:
        self.repeat_groups.append(len(group))
        return await super()._repeat_group(group)


def firing(*instances: str, group_key: str = GROUP_KEY) -> alertmanager.Notification:
    alerts = [
        {"status": "firing", "labels": {"alertname": "DiskFull", "instance": i}, "fingerprint": f"fp-{i}"}
        for i in instances
    ]
    body = {"version": "4", "groupKey": group_key, "status": "firing", "alerts": alerts}
    return msgspec.convert(body, alertmanager.Notification)


def resolved(group_key: str = GROUP_KEY) -> alertmanager.Notification:
    body = {"version": "4", "groupKey": group_key, "status": "resolved", "alerts": []}
    return msgspec.convert(body, alertmanager.Notification)


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[CountingRepository]:
    found = CountingRepository(Db(database_url))
    found.repeat_groups = []
    await found.db.connect()
    yield found
    await found.db.disconnect()


async def _rows(db: Db, key: str) -> list[tuple[int, str, int, int]]:
    rows = await db.database.fetch_all(
        sa.select(incidents.c.id, incidents.c.status, incidents.c.alert_count, incidents.c.version)
        .where(incidents.c.dedup_key == key)
        .order_by(incidents.c.id)
    )
    return [(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


async def _event_types(db: Db, incident_id: int) -> list[str]:
    rows = await db.database.fetch_all(
        sa.select(incident_events.c.type).where(incident_events.c.incident_id == incident_id)
    )
    return [str(r[0]) for r in rows]


async def test_concurrent_repeats_of_one_group_count_exactly_in_shared_transactions(repo: CountingRepository) -> None:
    intake = AlertIntake(repo)
    opened = await intake.notification(firing("a"), ALERTMANAGER)
    assert opened.created
    outcomes = await asyncio.gather(*(intake.notification(firing("a"), ALERTMANAGER) for _ in range(REPEATS)))
    assert outcomes == [Outcome(opened.incident_id)] * REPEATS
    [(incident_id, status, count, version)] = await _rows(repo.db, GROUP_KEY)
    assert (incident_id, status, count, version) == (opened.incident_id, "unresolved", REPEATS + 1, 1)
    assert await _event_types(repo.db, incident_id) == ["created"]
    assert sum(repo.repeat_groups) == REPEATS + 1  # the first one found no open incident
    assert max(repo.repeat_groups) > 1, "concurrent repeats should have shared a transaction"


async def test_alerts_joining_among_repeats_are_noted_once_and_every_notification_counted(
    repo: CountingRepository,
) -> None:
    intake = AlertIntake(repo)
    opened = await intake.notification(firing("a"), ALERTMANAGER)
    notes = [firing("a")] * 30 + [firing("a", "b")] * 30
    await asyncio.gather(*(intake.notification(note, ALERTMANAGER) for note in notes))
    [(incident_id, _, count, _)] = await _rows(repo.db, GROUP_KEY)
    assert incident_id == opened.incident_id and count == 61
    shown = await repo.get(incident_id)
    assert shown is not None
    assert shown.firing == frozenset({"fp-a", "fp-b"})
    assert shown.comments == ["Alert firing: DiskFull (instance=b)"]


async def test_a_resolve_among_repeats_leaves_the_next_trigger_opening_a_new_incident(
    repo: CountingRepository,
) -> None:
    intake = AlertIntake(repo)
    first = await intake.notification(firing("a"), ALERTMANAGER)
    storm = [firing("a")] * 40 + [resolved()] + [firing("a")] * 40
    await asyncio.gather(*(intake.notification(note, ALERTMANAGER) for note in storm))
    rows = await _rows(repo.db, GROUP_KEY)
    assert rows[0][:2] == (first.incident_id, "resolved")
    assert sum(r[2] for r in rows) == 81, "every firing notification counted exactly once"
    assert [r[1] for r in rows[1:]].count("unresolved") <= 1
    # Whatever the storm left open, a resolve closes it and the next firing opens a new incident.
    await intake.notification(resolved(), ALERTMANAGER)
    again = await intake.notification(firing("a"), ALERTMANAGER)
    assert again.created and again.incident_id not in {r[0] for r in rows}
    assert "created" in await _event_types(repo.db, again.incident_id or 0)


async def test_a_resolve_between_the_read_and_the_count_opens_a_new_incident(
    mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API replicas on one MariaDB: replica B resolves the group while replica A's repeats have read
    the open incident but not yet counted on it. A's repeat must not count on the resolved incident."""
    a, b = SqlIncidentRepository(Db(mariadb_url)), SqlIncidentRepository(Db(mariadb_url))
    await a.db.connect()
    await b.db.connect()
    try:
        first = await AlertIntake(a).notification(firing("a"), ALERTMANAGER)
        reads = 0
        real = repository.open_incidents

        async def read_then_resolve_elsewhere(db: Db, keys: list[str]) -> list[OpenIncident]:
            nonlocal reads
            found = await real(db, keys)
            reads += 1
            if reads == 1:
                assert [i.id for i in found] == [first.incident_id]
                await AlertIntake(b).notification(resolved(), ALERTMANAGER)
            return found

        monkeypatch.setattr(repository, "open_incidents", read_then_resolve_elsewhere)
        repeat = await AlertIntake(a).notification(firing("a"), ALERTMANAGER)
        assert repeat.created and repeat.incident_id != first.incident_id
        rows = await _rows(a.db, GROUP_KEY)
        assert [(r[0], r[1], r[2]) for r in rows] == [
            (first.incident_id, "resolved", 1),
            (repeat.incident_id, "unresolved", 1),
        ]
    finally:
        await a.db.disconnect()
        await b.db.disconnect()


ALPHA_KEY = "R0UTINGKEYALPHA0000000000000001"
BRAVO_KEY = "R0UTINGKEYBRAVO0000000000000002"
OPS_TOKEN, CI_TOKEN = "storm-test-token-ops", "storm-test-token-ci"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Any]:
    settings = msgspec.structs.replace(
        api_settings(database_url, tokens=[f"ops:{OPS_TOKEN}", f"ci:{CI_TOKEN}"]),
        integration_keys=parse_integration_keys([f"alpha:{ALPHA_KEY}", f"bravo:{BRAVO_KEY}"]),
    )
    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


def _event(routing_key: str, action: str, key: str = "host-1") -> dict[str, Any]:
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": key}
    if action == "trigger":
        event["payload"] = {"summary": "host-1 down", "source": "host-1", "severity": "critical"}
    return event


async def _by_key(api: Any, key: str) -> list[dict[str, Any]]:
    answer = await api.get("/incident/", params={"dedup_key": key}, headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert answer.status_code == 200, answer.text
    return sorted(answer.json()["items"], key=lambda i: i["id"])


async def test_a_repeat_for_an_integrations_key_never_touches_another_integrations_incident(api: Any) -> None:
    for routing_key in (ALPHA_KEY, BRAVO_KEY, BRAVO_KEY, BRAVO_KEY):
        assert (await api.post("/v2/enqueue", json=_event(routing_key, "trigger"))).status_code == 202
    alpha, bravo = await _by_key(api, "host-1")
    assert (alpha["alert_count"], bravo["alert_count"]) == (1, 3)
    for action in ("acknowledge", "resolve"):
        assert (await api.post("/v2/enqueue", json=_event(BRAVO_KEY, action))).status_code == 202
    alpha, bravo = await _by_key(api, "host-1")
    assert (alpha["status"], alpha["acknowledged"], alpha["version"]) == ("unresolved", "no", 1)
    assert (bravo["status"], bravo["acknowledged"]) == ("resolved", "yes")
    # Alertmanager group keys are easy to guess: each token's groups are its own.
    note = msgspec.to_builtins(firing("a", group_key='{}:{alertname="X"}'))
    for token in (OPS_TOKEN, CI_TOKEN, CI_TOKEN):
        answer = await api.post("/integrations/alertmanager", json=note, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
    ops, ci = await _by_key(api, '{}:{alertname="X"}')
    assert (ops["alert_count"], ci["alert_count"]) == (1, 2)
    done = msgspec.to_builtins(resolved('{}:{alertname="X"}'))
    answer = await api.post("/integrations/alertmanager", json=done, headers={"Authorization": f"Bearer {CI_TOKEN}"})
    assert answer.json()["ID"] == str(ci["id"])
    ops, ci = await _by_key(api, '{}:{alertname="X"}')
    assert (ops["status"], ci["status"]) == ("unresolved", "resolved")


async def _sql(url: str, statements: list[str]) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            result: list[Any] = []
            for statement in statements:
                found = await connection.execute(sa.text(statement))
                result = list(found.fetchall()) if found.returns_rows else []
            return result
    finally:
        await engine.dispose()


def test_existing_incidents_keep_their_keys_with_the_integration_that_sent_them(database_url: str) -> None:
    downgrade(database_url, "0004")
    columns = "message, status, acknowledged, version, created_at, updated_at, dedup_key, open_dedup_key, integration"
    event = "INSERT INTO incident_events (event_id, incident_id, version, type, actor, payload, created_at) VALUES"
    asyncio.run(
        _sql(
            database_url,
            [
                f"INSERT INTO incidents (id, {columns}) VALUES "
                "(1, 'pd', 'unresolved', 'no', 1, 0, 0, 'k', 'k', 'alpha')",
                f"INSERT INTO incidents (id, {columns}) VALUES (2, 'am', 'resolved', 'no', 2, 0, 0, 'g', NULL, "
                "'alertmanager')",
                f"INSERT INTO incidents (id, {columns}) VALUES (3, 'api', 'unresolved', 'no', 1, 0, 0, 'x', 'x', NULL)",
                f"{event} ('e1', 1, 1, 'created', 'alpha', '{{}}', 0), ('e2', 2, 1, 'created', 'ops', '{{}}', 0), "
                "('e3', 2, 2, 'resolved', 'someone', '{}', 0), ('e4', 3, 1, 'created', 'ops', '{}', 0)",
            ],
        )
    )
    migrate(database_url)
    owners = asyncio.run(_sql(database_url, ["SELECT id, dedup_owner FROM incidents ORDER BY id"]))
    assert [(int(r[0]), r[1]) for r in owners] == [(1, "alpha"), (2, "alertmanager:ops"), (3, "")]
    # The same key, opened by another integration, is another incident now.
    asyncio.run(
        _sql(
            database_url,
            [
                f"INSERT INTO incidents ({columns}, dedup_owner) VALUES "
                "('pd', 'unresolved', 'no', 1, 0, 0, 'k', 'k', 'bravo', 'bravo')"
            ],
        )
    )
