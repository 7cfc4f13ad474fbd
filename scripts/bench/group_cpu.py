"""CPU of the group-create path without the database: `_insert_group` on batches of creates, MariaDB dialect, with
a driver that answers at once. What it measures is the API's own work per create (rows, events, SQL text).

    python -m scripts.bench.group_cpu [--creates 1000] [--group 250] [--repeat 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.api.domain import AlertFields, Incident
from services.api.events import EventRecorder, Origin
from services.api.repository import NewIncident, SqlIncidentRepository
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


async def _measure(creates: int, group: int, repeat: int) -> list[float]:
    repository = SqlIncidentRepository(_Db())  # type: ignore[arg-type]
    recorder = EventRecorder(Origin("bench", "req-1"))
    per_create_us = []
    for _ in range(repeat):
        batches = [_creates(group, recorder) for _ in range(creates // group)]
        started = time.process_time()
        for batch in batches:
            await repository._insert_group(batch)
        per_create_us.append((time.process_time() - started) / creates * 1e6)
    return per_create_us


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--group", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=15)
    args: Any = parser.parse_args(argv)
    runs = asyncio.run(_measure(args.creates, args.group, args.repeat))
    print(
        f"group create CPU per create: min {min(runs):.1f} µs, median {statistics.median(runs):.1f} µs "
        f"({args.repeat} runs of {args.creates} creates in groups of {args.group})"
    )


if __name__ == "__main__":
    main()
