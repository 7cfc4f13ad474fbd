"""Idempotency keys live a day after their request, and the prune deletes them in chunks by the created_at index."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.dialects import mysql, sqlite

from services.api.app import create_app
from services.api.background import IDEMPOTENCY_TTL_SECONDS
from services.api.storage.db import Db, to_micros
from services.api.storage.outbox import micros_ago
from services.api.storage.repository import PRUNE_CHUNK, SqlIncidentRepository, expired_keys
from services.api.storage.tables import idempotency_keys, incidents
from shared.events import utcnow
from tests.integration.api.conftest import api_settings


async def keys(db: Db) -> list[str]:
    return [str(r[0]) for r in await db.database.fetch_all(sa.select(idempotency_keys.c.key))]


async def test_a_key_for_a_no_op_on_an_old_incident_survives_the_prune(database_url: str, db: Db) -> None:
    async with AsyncTestClient(create_app(api_settings(database_url))) as client:
        created = await client.post("/incident/", json={"message": "disk full"})
        incident = int(created.json()["ID"])
        assert (await client.post(f"/incident/{incident}/acknowledge")).status_code == 200
        two_days_ago = to_micros(utcnow() - timedelta(days=2))
        await db.database.execute(incidents.update().where(incidents.c.id == incident).values(updated_at=two_days_ago))

        no_op = await client.post(f"/incident/{incident}/acknowledge", headers={"Idempotency-Key": "ack-again"})
        assert no_op.status_code == 200
        await SqlIncidentRepository(db).prune_idempotency_keys(micros_ago(IDEMPOTENCY_TTL_SECONDS))

        assert await keys(db) == ["ack-again"]
        replay = await client.post(f"/incident/{incident}/acknowledge", headers={"Idempotency-Key": "ack-again"})
        assert (replay.status_code, replay.json()) == (200, no_op.json())


async def test_the_prune_deletes_expired_keys_in_chunks_by_the_created_at_index(database_url: str, db: Db) -> None:
    now = to_micros(utcnow())
    old = now - 2 * IDEMPOTENCY_TTL_SECONDS * 1_000_000
    expired = 2 * PRUNE_CHUNK + 7
    rows: list[dict[str, Any]] = [
        {"key": f"old-{n}", "fingerprint": "f", "status_code": 200, "response": "{}", "created_at": old + n}
        for n in range(expired)
    ]
    rows += [
        {"key": f"new-{n}", "fingerprint": "f", "status_code": 200, "response": "{}", "created_at": now}
        for n in range(5)
    ]
    await db.database.execute_many(idempotency_keys.insert(), rows)
    pruned = await SqlIncidentRepository(db).prune_idempotency_keys(micros_ago(IDEMPOTENCY_TTL_SECONDS))

    assert pruned == expired
    assert sorted(await keys(db)) == [f"new-{n}" for n in range(5)]
    dialect = sqlite.dialect() if db.is_sqlite else mysql.dialect()
    query = str(expired_keys(now).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if db.is_sqlite:
        plan = " ".join(str(r[-1]) for r in await db.database.fetch_all(f"EXPLAIN QUERY PLAN {query}"))
    else:
        plan = " ".join(str(dict(r._mapping).get("key")) for r in await db.database.fetch_all(f"EXPLAIN {query}"))
    assert "ix_idempotency_keys_created_at" in plan, plan
