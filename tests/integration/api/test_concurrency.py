"""Many responders changing one incident at once lose nothing (real API process, SQLite and MariaDB)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from services.api.storage.db import Db
from services.api.storage.tables import incident_events
from tests.support.processes import free_port
from tests.support.services import ApiProcess


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[ApiProcess]:
    process = ApiProcess(tmp_path, database_url, f"nats://127.0.0.1:{free_port()}").start()
    yield process
    process.stop()


async def event_versions(database_url: str, incident_id: int) -> list[int]:
    db = Db(database_url)
    await db.connect()
    try:
        rows = await db.database.fetch_all(
            sa.select(incident_events.c.version)
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.version)
        )
        return [int(r[0]) for r in rows]
    finally:
        await db.disconnect()


async def test_concurrent_puts_and_comments_lose_nothing(api: ApiProcess, database_url: str) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        incident_id = (await http.post("/incident/", json={"message": "m"})).json()["ID"]
        comments = [f"comment {n}" for n in range(40)]

        async def put_comment(text: str) -> int:
            return (await http.put(f"/incident/{incident_id}", json={"comments": text})).status_code

        async def post_comment(text: str) -> int:
            return (await http.post(f"/incident/{incident_id}/comments", json={"comment": text})).status_code

        async def toggle(n: int) -> int:
            body = {"acknowledged": "yes" if n % 2 else "no", "message": f"edit {n}"}
            return (await http.put(f"/incident/{incident_id}", json=body)).status_code

        calls = [put_comment(c) if n % 2 else post_comment(c) for n, c in enumerate(comments)]
        calls += [toggle(n) for n in range(20)]
        statuses = await asyncio.gather(*calls)

        final = (await http.get(f"/incident/{incident_id}")).json()
        committed_comments = [c for c, s in zip(comments, statuses[:40], strict=True) if s == 200]
        # Every acknowledged write is in the final state: 409 is allowed, a silent overwrite is not.
        assert set(statuses) <= {200, 409}
        assert sorted(final["comments"]) == sorted(committed_comments)
        assert len(committed_comments) >= 30
        # One event per change, versions 1..n with no gap or repeat.
        assert await event_versions(database_url, int(incident_id)) == list(range(1, final["version"] + 1))
