"""CPU of the group write paths without the database: `_insert_group` on batches of creates and `_apply_changes`
on batches of comments, MariaDB dialect, with a driver that answers at once and the incidents a change reads
already loaded. What it measures is the API's own work per write (rows, events, SQL text).

    python -m scripts.bench.group_cpu [--creates 1000] [--group 250] [--repeat 15]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.api.incidents.domain import AlertFields, Incident
from services.api.incidents.events import EventRecorder, Origin
from services.api.storage.repository import IncidentChange, NewIncident, SqlIncidentRepository
from shared.events import utcnow


class _Cursor:
    """Answers RETURNING with consecutive ids, one per row of the statement."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver
        self._found: list[tuple[int]] = []

    async def execute(self, sql: str) -> None:
        rows = sql.count("),(") + 1
        start = self._driver.next_id
        self._driver.next_id += rows
        self._driver.sent += len(sql)
        self._found = [(start + n,) for n in range(rows)] if sql.endswith(" RETURNING id") else []

    async def executemany(self, sql: str, rows: list[Any]) -> None:
        self.rowcount = len(rows)

    async def fetchall(self) -> list[tuple[int]]:
        return self._found


class _Driver:
    def __init__(self) -> None:
        self.next_id = 1
        self.sent = 0

    @asynccontextmanager
    async def cursor(self) -> AsyncIterator[_Cursor]:
        yield _Cursor(self)


class _Connection:
    def __init__(self, driver: _Driver) -> None:
        self.raw_connection = driver


class _Database:
    def __init__(self) -> None:
        self._connection = _Connection(_Driver())

    def connection(self) -> _Connection:
        return self._connection


class _Db:
    is_sqlite = False

    def __init__(self) -> None:
        self.database = _Database()


def _creates(count: int, recorder: EventRecorder) -> list[NewIncident]:
    now = utcnow()
    alert = AlertFields(source="checkout", labels=(("service", "checkout"), ("team", "payments")), dedup_key=None)
    return [NewIncident(Incident.open(f"checkout is down {n}", now, alert), recorder, None) for n in range(count)]


class _Loaded(SqlIncidentRepository):
    """Reads the incidents a change group needs from memory: only the writes go to the driver."""

    stored: dict[int, Incident]

    async def _load_many(self, ids: Any, *, for_update: bool = False) -> dict[int, Incident]:
        return {i: dataclasses.replace(self.stored[i], comments=list(self.stored[i].comments)) for i in ids}


def _comment(incident: Incident) -> None:
    incident.comment("looking into it", utcnow())


async def _measure(writes: int, group: int, repeat: int) -> tuple[list[float], list[float]]:
    repository = _Loaded(_Db())  # type: ignore[arg-type]
    recorder = EventRecorder(Origin("bench", "req-1"))
    per_create_us, per_change_us = [], []
    for _ in range(repeat):
        batches = [_creates(group, recorder) for _ in range(writes // group)]
        started = time.process_time()
        for batch in batches:
            await repository._insert_group(batch)
        per_create_us.append((time.process_time() - started) / writes * 1e6)
        repository.stored = {new.incident.id or 0: new.incident for batch in batches for new in batch}
        for incident in repository.stored.values():
            incident.changes = []
        changes = [
            [IncidentChange(new.incident.id or 0, _comment, recorder, None, None) for new in batch] for batch in batches
        ]
        started = time.process_time()
        for change_batch in changes:
            await repository._apply_changes(change_batch)
        per_change_us.append((time.process_time() - started) / writes * 1e6)
    return per_create_us, per_change_us


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--group", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=15)
    args: Any = parser.parse_args(argv)
    creates, changes = asyncio.run(_measure(args.creates, args.group, args.repeat))
    for name, runs in (("create", creates), ("change", changes)):
        print(
            f"group {name} CPU per {name}: min {min(runs):.1f} µs, median {statistics.median(runs):.1f} µs "
            f"({args.repeat} runs of {args.creates} in groups of {args.group})"
        )


if __name__ == "__main__":
    main()
