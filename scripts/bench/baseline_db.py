"""Raw MariaDB baseline: transactions inserting two rows (an incident and its event) through asyncmy directly."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict, dataclass

import asyncmy

from scripts.bench.procstats import CpuWindow
from scripts.bench.stats import percentiles_ms
from tests.support.mariadb import PASSWORD, USER, MariaDB

DATABASE = "bench_raw"
_SCHEMA = f"""
CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE TABLE {DATABASE}.incidents (
  id BIGINT AUTO_INCREMENT PRIMARY KEY, message TEXT NOT NULL, status VARCHAR(16) NOT NULL,
  acknowledged VARCHAR(3) NOT NULL, version INT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
) ENGINE=InnoDB;
CREATE TABLE {DATABASE}.incident_events (
  id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id VARCHAR(36) NOT NULL UNIQUE, incident_id BIGINT NOT NULL,
  version INT NOT NULL, type VARCHAR(32) NOT NULL, payload LONGTEXT NOT NULL, created_at BIGINT NOT NULL
) ENGINE=InnoDB;
"""
_INSERT_INCIDENT = (
    "INSERT INTO incidents (message, status, acknowledged, version, created_at, updated_at) "
    "VALUES (%s, 'unresolved', 'no', 1, %s, %s)"
)
_INSERT_EVENT = (
    "INSERT INTO incident_events (event_id, incident_id, version, type, payload, created_at) "
    "VALUES (%s, %s, 1, 'created', %s, %s)"
)
PAYLOAD = "x" * 600  # about the size of an encoded incident.created CloudEvent


@dataclass
class DbResult:
    client: str
    concurrency: int
    transactions: int
    duration_s: float
    tps: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_s: dict[str, float]
    """CPU seconds of MariaDB, the benchmark process (the client) and everything else on the machine."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def _one(conn: asyncmy.Connection) -> None:
    now = time.time_ns() // 1000
    async with conn.cursor() as cur:
        await conn.begin()
        await cur.execute(_INSERT_INCIDENT, ("bench raw", now, now))
        incident_id = cur.lastrowid
        await cur.execute(_INSERT_EVENT, (str(uuid.uuid4()), incident_id, PAYLOAD, now))
        await conn.commit()


async def run_raw_db(
    mariadb: MariaDB, pids: dict[str, int], *, duration: float, concurrency: int, warmup: float
) -> DbResult:
    mariadb.sql(_SCHEMA)
    conns = [
        await asyncmy.connect(host="127.0.0.1", port=mariadb.port, user=USER, password=PASSWORD, db=DATABASE)
        for _ in range(concurrency)
    ]
    latencies: list[float] = []
    measuring = False
    try:

        async def loop(conn: asyncmy.Connection, until: float) -> int:
            done = 0
            while time.monotonic() < until:
                started = time.perf_counter()
                await _one(conn)
                if measuring:
                    latencies.append(time.perf_counter() - started)
                    done += 1
            return done

        if warmup:
            until = time.monotonic() + warmup
            await asyncio.gather(*(loop(c, until) for c in conns))
        measuring = True
        window = CpuWindow(pids).start()
        started = time.monotonic()
        counts = await asyncio.gather(*(loop(c, started + duration) for c in conns))
        elapsed = time.monotonic() - started
        cpu = window.stop()
    finally:
        for conn in conns:
            await conn.ensure_closed()
    total = sum(counts)
    p = percentiles_ms(latencies, (50, 99))
    return DbResult(
        client="asyncmy (no pool, one connection per task)",
        concurrency=concurrency,
        transactions=total,
        duration_s=round(elapsed, 3),
        tps=round(total / elapsed, 1),
        p50_ms=p[50],
        p99_ms=p[99],
        cpu_s=cpu,
    )
