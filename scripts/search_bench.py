"""`python -m scripts.search_bench [--incidents N] [--database sqlite|mariadb|both]`: the list's search, filters and
triage order at 100,000 incidents, through the repository's own queries, on SQLite and on a throwaway MariaDB.

Fills the database with N incidents (mixed severities, sources, labels; a comment on every tenth), then times each
query (the median and the worst of several runs, in milliseconds) and prints one line per query.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from services.api.incidents.domain import Acknowledged, Status
from services.api.storage.db import Db
from services.api.storage.repository import ListFilter, SqlIncidentRepository
from tests.support.database import migrate, new_mysql_database, sqlite_url
from tests.support.mariadb import MariaDB

WORDS = (
    "checkout latency payments queue disk full memory pressure certificate expiry replication lag kafka consumer "
    "timeout database connection pool exhausted error rate spike login failures cache miss ratio search index"
).split()
SEVERITIES = ("critical", "error", "warning", "info", None)
TEAMS = ("payments", "search", "storage", "identity", "data", "edge")
BATCH = 2000
RUNS = 7

QUERIES: dict[str, ListFilter] = {
    "default view (open, most severe first)": ListFilter(status=Status.UNRESOLVED, by_severity=True, limit=51),
    "q=zebracache (rare word)": ListFilter(text="zebracache", by_severity=True, limit=51),
    "q=checkout (common word)": ListFilter(text="checkout", limit=51),
    "q=replication lag (two words)": ListFilter(text="replication lag", status=Status.UNRESOLVED, limit=51),
    "q=rolled (in comments)": ListFilter(text="rolled", limit=51),
    "labels.team=payments": ListFilter(labels=(("team", "payments"),), limit=51),
    "source=prometheus-eu": ListFilter(source="prometheus-eu", limit=51),
    "unacknowledged critical": ListFilter(
        status=Status.UNRESOLVED, acknowledged=Acknowledged.NO, by_severity=True, limit=51
    ),
}


def rows(count: int, seed: int = 7) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    rng = random.Random(seed)
    now = int(time.time() * 1_000_000)
    incidents: list[dict[str, object]] = []
    comments: list[dict[str, object]] = []
    for n in range(1, count + 1):
        words = " ".join(rng.choice(WORDS) for _ in range(6))
        if n % 9973 == 0:
            words += " zebracache"
        severity = rng.choice(SEVERITIES)
        incidents.append(
            {
                "id": n,
                "message": f"{words} on host-{rng.randrange(500)}",
                "status": "resolved" if rng.random() < 0.8 else "unresolved",
                "acknowledged": "yes" if rng.random() < 0.5 else "no",
                "version": 1,
                "created_at": now - (count - n) * 1000,
                "updated_at": now - (count - n) * 1000,
                "severity": severity,
                "source": rng.choice(("prometheus-eu", "prometheus-us", "grafana", "pagerduty")),
                "labels": json.dumps({"team": rng.choice(TEAMS), "region": rng.choice(("eu", "us"))}),
            }
        )
        if n % 10 == 0:
            comments.append(
                {
                    "incident_id": n,
                    "position": 0,
                    "body": "rolled back the deploy" if n % 100 == 0 else "looking into it",
                    "created_at": now,
                }
            )
    return incidents, comments


async def fill(db: Db, count: int) -> float:
    incidents, comments = rows(count)
    started = time.perf_counter()
    insert = (
        "INSERT INTO incidents (id, message, status, acknowledged, version, created_at, updated_at, severity, source, "
        "labels, alert_count) VALUES (:id, :message, :status, :acknowledged, :version, :created_at, :updated_at, "
        ":severity, :source, :labels, 0)"
    )
    comment = (
        "INSERT INTO incident_comments (incident_id, position, body, created_at) "
        "VALUES (:incident_id, :position, :body, :created_at)"
    )
    for start in range(0, len(incidents), BATCH):
        async with db.write():
            await db.database.execute_many(insert, incidents[start : start + BATCH])
    for start in range(0, len(comments), BATCH):
        async with db.write():
            await db.database.execute_many(comment, comments[start : start + BATCH])
    return time.perf_counter() - started


async def measure(url: str, count: int, name: str) -> None:
    db = Db(url)
    await db.connect()
    try:
        seconds = await fill(db, count)
        print(f"{name}: {count:,} incidents stored in {seconds:.1f} s")
        repo = SqlIncidentRepository(db)
        for label, query in QUERIES.items():
            timings, found = [], 0
            for _ in range(RUNS):
                started = time.perf_counter()
                page = await repo.list_incidents(query)
                await repo.activity(page)
                timings.append((time.perf_counter() - started) * 1000)
                found = len(page)
            print(
                f"{name}: {label:<42} median {statistics.median(timings):7.1f} ms  worst {max(timings):7.1f} ms"
                f"  ({found} rows)"
            )
    finally:
        await db.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "mariadb", "both"), default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="search-bench-") as folder:
        workdir = Path(folder)
        if args.database in ("sqlite", "both"):
            url = sqlite_url(workdir)
            migrate(url)
            asyncio.run(measure(url, args.incidents, "sqlite"))
        if args.database in ("mariadb", "both"):
            server = MariaDB(workdir / "mariadb").start()
            try:
                url = new_mysql_database(server.admin_url, server.sql)
                migrate(url)
                asyncio.run(measure(url, args.incidents, "mariadb"))
            finally:
                server.stop()


if __name__ == "__main__":
    main()
