"""Repeated alerts in bulk, straight on the driver: one statement finds the open incidents of every queued
dedup key, one adds all their counts. A repeat makes no event, so nothing else is written."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.api.storage.bulk import mysql_literal
from services.api.storage.db import Db
from services.api.storage.tables import incidents


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """The columns of an open incident that counting a repeat reads, one field per column of the same name."""

    id: int
    open_dedup_key: str
    dedup_owner: str
    firing_alerts: str | None


_OPEN_COLUMNS = tuple(incidents.c[f.name].name for f in dataclasses.fields(OpenIncident))


@dataclass(frozen=True, slots=True)
class Count:
    incident_id: int
    dedup_key: str
    owner: str
    alerts: int
    last_alert_at: int
    """Microseconds."""


async def open_incidents(db: Db, keys: Sequence[str]) -> list[OpenIncident]:
    """The open incidents holding any of `keys` (whoever owns them: the caller matches the owner)."""
    if not keys:
        return []
    select = f"SELECT {','.join(_OPEN_COLUMNS)} FROM incidents WHERE open_dedup_key IN "  # noqa: S608
    return [OpenIncident(**dict(zip(_OPEN_COLUMNS, row, strict=True))) for row in await _fetch(db, select, keys)]


async def add_counts(db: Db, counts: Sequence[Count]) -> int:
    """Add every count in one UPDATE of the incidents still open under their key; the rows it changed."""
    if not counts:
        return 0
    mark = "?" if db.is_sqlite else "{}"
    by_id = " ".join(f"WHEN {mark} THEN {mark}" for _ in counts)
    ids = ",".join([mark] * len(counts))
    sql = (
        f"UPDATE incidents SET alert_count = alert_count + CASE id {by_id} END, "  # noqa: S608
        f"last_alert_at = CASE id {by_id} END "
        f"WHERE id IN ({ids}) AND open_dedup_key IS NOT NULL"
    )
    params: list[Any] = [v for c in counts for v in (c.incident_id, c.alerts)]
    params += [v for c in counts for v in (c.incident_id, c.last_alert_at)]
    params += [c.incident_id for c in counts]
    return await _execute(db, sql, params)


async def add_count(db: Db, count: Count) -> bool:
    """Add one count, only while that incident holds the key for that owner (the group's fallback)."""
    mark = "?" if db.is_sqlite else "{}"
    sql = (
        f"UPDATE incidents SET alert_count = alert_count + {mark}, last_alert_at = {mark} "  # noqa: S608
        f"WHERE id = {mark} AND open_dedup_key = {mark} AND dedup_owner = {mark}"
    )
    params = [count.alerts, count.last_alert_at, count.incident_id, count.dedup_key, count.owner]
    return await _execute(db, sql, params) == 1


async def _fetch(db: Db, sql: str, values: Sequence[Any]) -> list[Any]:
    raw = db.database.connection().raw_connection
    if db.is_sqlite:
        cursor = await raw.execute(sql + "(" + ",".join(["?"] * len(values)) + ")", list(values))
        try:
            return list(await cursor.fetchall())
        finally:
            await cursor.close()
    async with raw.cursor() as cursor:
        await cursor.execute(sql + "(" + ",".join(map(mysql_literal, values)) + ")")
        return list(await cursor.fetchall())


async def _execute(db: Db, sql: str, params: Sequence[Any]) -> int:
    """Run one statement inside the caller's transaction; the number of rows it changed."""
    raw = db.database.connection().raw_connection
    if db.is_sqlite:
        cursor = await raw.execute(sql, list(params))
        try:
            return int(cursor.rowcount)
        finally:
            await cursor.close()
    # Values go in as literals (text as hex, integers as digits: see mysql_literal), one round trip.
    async with raw.cursor() as cursor:
        await cursor.execute(sql.format(*map(mysql_literal, params)))
        return int(cursor.rowcount)
