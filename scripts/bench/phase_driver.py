"""The database driver layer: the API's hot statements through `databases` (the `Db` seam, as the API runs them)
and through SQLAlchemy 2's async engine doing the same work, in one process, in interleaved rounds (A B A B ...),
on MariaDB and SQLite. Figures are this process's rate and CPU (`time.process_time`, every thread: aiosqlite runs
SQLite in threads) per operation, and SQLAlchemy ÷ databases ratios of the same run.

Operations:
- create_group: `group` creates in one transaction, an incident, its event, its outbox row and its idempotency
  key each, the four multi-row inserts of the group commit (`bulk.insert_rows`). SQLAlchemy runs them as
  insertmanyvalues (Core `insert().returning(...)` with a list of rows: its natural replacement for bulk.py), and
  as `exec_driver_sql` of bulk.py's own SQL text (`sqlalchemy_same_sql`);
- outbox_claim_delete: the relay's claim of up to 100 rows (SELECT ... FOR UPDATE SKIP LOCKED on MariaDB, the
  payloads, the per-incident order check) and the DELETE of the delivered rows in the claiming transaction; a
  fixed backlog per round, claimed until empty by one task, as the relay claims;
- repeats_batch: the alert storm's batch, one SELECT of the open incidents of 16 dedup keys and one UPDATE of their
  counts, in one transaction (each task its own keys);
- read_by_id: `GET /incident/{id}`'s read, the row and its comments on one connection;
- list: `GET /incident/`'s first page, 50 rows and their comments.

The SQLAlchemy side is configured as a swap would be: pooled connections (SQLite pragmas set once per connection),
reads on an AUTOCOMMIT engine (as `databases` runs asyncmy) with `skip_autocommit_rollback`, writes in
`engine.begin()` transactions, no reset (ROLLBACK) on return to the pool; SQLite writers serialise on a process
lock as in `Db.write`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from scripts.bench.options import Options
from scripts.bench.procstats import cpu_seconds
from scripts.bench.system import Infra, migrate
from services.api.incidents.domain import Incident
from services.api.storage.bulk import insert_rows as bulk_insert_rows
from services.api.storage.bulk import inserted_columns, multi_row_insert, mysql_literal
from services.api.storage.db import Db
from services.api.storage.outbox import OutboxStore
from services.api.storage.repeats import Count, add_counts, open_incidents
from services.api.storage.repository import ListFilter, SqlIncidentRepository, _incident
from services.api.storage.tables import idempotency_keys, incident_comments, incident_events, incidents, outbox

BASE = "databases"
OUTBOX_CLAIM = 100
LIST_LIMIT = 50
REPEAT_KEYS = 16
"""Dedup keys per repeats batch; every task has its own (no lock waits between tasks)."""
PAYLOAD = "x" * 600  # about the size of an encoded incident.created CloudEvent
SEED_INCIDENTS = 1000
DATABASE = "incidents_driver"


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DriverOptions:
    rounds: int = 3
    seconds: float = 2.0
    concurrency: int = 32
    group: int = 16
    """Creates per create_group transaction."""
    outbox_claims: int = 200
    """Full claims of backlog per outbox round."""
    warmup: float = 0.5


Row = dict[str, Any]
TABLES = {table.name: table for table in (incidents, incident_events, outbox, incident_comments, idempotency_keys)}
COLUMNS = {name: inserted_columns(table) for name, table in TABLES.items()}
"""The columns bulk.py writes, in its order."""


def ordered(table: str, rows: Sequence[Row]) -> list[list[Any]]:
    """Rows by column name as bulk.py takes them (values in its column order), as the repository hands them."""
    columns = COLUMNS[table]
    return [[row[name] for name in columns] for row in rows]


@dataclass
class Rows:
    """Fresh rows for creates: unique event ids and idempotency keys from a counter (cheap, same for both sides)."""

    prefix: str
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def group(self, size: int, now: int) -> list[Row]:
        return [self.incident(now) for _ in range(size)]

    @staticmethod
    def incident(now: int, dedup_key: str | None = None) -> Row:
        return {
            "message": "bench driver",
            "status": "unresolved",
            "acknowledged": "no",
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
            "severity": None,
            "source": None,
            "labels": None,
            "dedup_key": dedup_key,
            "open_dedup_key": dedup_key,
            "firing_alerts": None,
            "alert_count": 0,
            "last_alert_at": None,
            "integration": None,
            "dedup_owner": "",
        }

    def event(self, incident_id: int, now: int) -> Row:
        return {
            "event_id": f"{self.prefix}-e{next(self.counter)}",
            "incident_id": incident_id,
            "version": 1,
            "type": "created",
            "actor": "api",
            "request_id": None,
            "comment": None,
            "payload": PAYLOAD,
            "created_at": now,
        }

    @staticmethod
    def outbox(event_row_id: int, incident_id: int, now: int) -> Row:
        return {"event_row_id": event_row_id, "incident_id": incident_id, "created_at": now}

    def answer(self, now: int) -> Row:
        return {
            "key": f"{self.prefix}-k{next(self.counter)}",
            "fingerprint": "f" * 64,
            "status_code": 200,
            "response": '{"status":"INCIDENT CREATED","ID":"1"}',
            "created_at": now,
        }


def _now() -> int:
    return time.time_ns() // 1000


class DatabasesSide:
    """Today's path: the API's own functions on the `Db` seam."""

    name = BASE

    def __init__(self, url: str, concurrency: int) -> None:
        self.db = Db(url, pool_size=concurrency)
        self.repository = SqlIncidentRepository(self.db)
        self.store = OutboxStore(self.db)

    async def open(self) -> None:
        await self.db.connect()

    async def close(self) -> None:
        await self.db.disconnect()

    async def create_group(self, rows: Rows, size: int) -> None:
        now = _now()
        async with self.db.write():
            ids = await self._insert("incidents", rows.group(size, now), returning=True)
            event_ids = await self._insert("incident_events", [rows.event(i, now) for i in ids], returning=True)
            entries = [rows.outbox(e, i, now) for e, i in zip(event_ids, ids, strict=True)]
            await self._insert("outbox", entries, returning=True)
            await self._insert("idempotency_keys", [rows.answer(now) for _ in ids], returning=False)

    async def _insert(self, table: str, rows: list[Row], *, returning: bool) -> list[int]:
        return await bulk_insert_rows(self.db, TABLES[table], rows, returning_ids=returning)

    async def outbox_claim_delete(self) -> int:
        async with self.store.claim(OUTBOX_CLAIM) as claim:
            await claim.delivered({row.id for row in claim.rows})
        return len(claim.rows)

    async def repeats_batch(self, keys: Sequence[str]) -> None:
        async with self.db.write():
            found = await open_incidents(self.db, keys)
            await add_counts(self.db, _counts([(f.id, f.open_dedup_key, f.dedup_owner) for f in found]))

    async def read_by_id(self, incident_id: int) -> Incident | None:
        return await self.repository.get(incident_id)

    async def list_page(self) -> list[Incident]:
        return await self.repository.list_incidents(ListFilter(limit=LIST_LIMIT))


def _counts(found: Sequence[tuple[int, str, str]]) -> list[Count]:
    """One repeat counted on each open incident found (id, dedup key, owner)."""
    now = _now()
    return [Count(incident_id, key, owner, 1, now) for incident_id, key, owner in found]


class SqlAlchemySide:
    """The same work on SQLAlchemy 2's async engine (see the module's docstring for its configuration)."""

    name = "sqlalchemy"

    def __init__(self, url: str, concurrency: int, *, same_sql: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.same_sql = same_sql
        options: dict[str, Any] = {"pool_size": concurrency, "max_overflow": 0}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": 30}
        else:
            options.update(pool_recycle=3600, connect_args={"connect_timeout": 5})
        # No ROLLBACK round trip when a connection goes back to the pool: every write ends in COMMIT or ROLLBACK
        # (engine.begin()), and reads run in autocommit.
        self.writes: AsyncEngine = create_async_engine(url, pool_reset_on_return=None, **options)
        self.reads: AsyncEngine = create_async_engine(
            url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, skip_autocommit_rollback=True, **options
        )
        if self.is_sqlite:
            for engine in (self.writes, self.reads):
                sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    async def open(self) -> None:
        for engine in (self.writes, self.reads):
            async with engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.writes.dispose()
        await self.reads.dispose()

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        if self._write_lock is None:
            async with self.writes.begin() as connection:
                return await work(connection)
        async with self._write_lock, self.writes.begin() as connection:
            return await work(connection)

    async def create_group(self, rows: Rows, size: int) -> None:
        now = _now()

        async def work(connection: AsyncConnection) -> None:
            ids = await self._insert(connection, "incidents", rows.group(size, now), returning=True)
            events = [rows.event(i, now) for i in ids]
            event_ids = await self._insert(connection, "incident_events", events, returning=True)
            entries = [rows.outbox(e, i, now) for e, i in zip(event_ids, ids, strict=True)]
            await self._insert(connection, "outbox", entries, returning=True)
            await self._insert(connection, "idempotency_keys", [rows.answer(now) for _ in ids], returning=False)

        await self._write(work)

    async def _insert(self, connection: AsyncConnection, table: str, rows: list[Row], *, returning: bool) -> Any:
        if self.same_sql:
            sql, params = multi_row_insert(table, ordered(table, rows), sqlite=self.is_sqlite, returning_ids=returning)
            result = await connection.exec_driver_sql(sql, tuple(params) if params else None)
            return sorted(int(r[0]) for r in result.fetchall()) if returning else []
        target = _CORE_TABLES[table]
        values = [{name: row[name] for name in COLUMNS[table]} for row in rows]
        if not returning:
            await connection.execute(target.insert(), values)
            return []
        # Unordered RETURNING, sorted, as bulk.py does: ordered RETURNING has no batched form on MariaDB or SQLite
        # for these tables (SQLAlchemy then inserts row by row).
        stmt = target.insert().returning(target.c.id)
        return sorted(int(r[0]) for r in (await connection.execute(stmt, values)).fetchall())

    async def outbox_claim_delete(self) -> int:
        if self.is_sqlite:
            async with self.reads.connect() as connection:
                rows = await _claimed(connection, lock=False)
            if rows:
                await self._write(lambda c: c.execute(outbox.delete().where(outbox.c.id.in_(sorted(rows)))))
            return len(rows)
        async with self.writes.connect() as connection:
            await connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            rows = await _claimed(connection, lock=True)
            if rows:
                await connection.execute(outbox.delete().where(outbox.c.id.in_(sorted(rows))))
            await connection.commit()
        return len(rows)

    async def repeats_batch(self, keys: Sequence[str]) -> None:
        async def work(connection: AsyncConnection) -> None:
            select = "SELECT id, open_dedup_key, dedup_owner, firing_alerts FROM incidents WHERE open_dedup_key IN "
            if self.is_sqlite:
                found = await connection.exec_driver_sql(select + "(" + ",".join(["?"] * len(keys)) + ")", tuple(keys))
            else:
                found = await connection.exec_driver_sql(select + "(" + ",".join(map(mysql_literal, keys)) + ")")
            counts = _counts([(int(r.id), str(r.open_dedup_key), str(r.dedup_owner)) for r in found.fetchall()])
            sql, params = _add_counts_statement(self.is_sqlite, counts)
            await connection.exec_driver_sql(sql, params)

        await self._write(work)

    async def read_by_id(self, incident_id: int) -> Incident | None:
        async with self.reads.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(incidents).where(incidents.c.id == incident_id, incidents.c.deleted_at.is_(None))
                )
            ).first()
            if row is None:
                return None
            comments = await _comments(connection, [incident_id])
        return _incident(row._mapping, comments.get(incident_id, []))

    async def list_page(self) -> list[Incident]:
        stmt = sa.select(incidents).where(incidents.c.deleted_at.is_(None)).order_by(incidents.c.id.desc())
        async with self.reads.connect() as connection:
            rows = (await connection.execute(stmt.limit(LIST_LIMIT))).fetchall()
            comments = await _comments(connection, [int(r.id) for r in rows])
        return [_incident(r._mapping, comments.get(int(r.id), [])) for r in rows]


_CORE_TABLES = {
    "incidents": incidents,
    "incident_events": incident_events,
    "outbox": outbox,
    "incident_comments": incident_comments,
    "idempotency_keys": idempotency_keys,
}


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _add_counts_statement(is_sqlite: bool, counts: Sequence[Count]) -> tuple[str, Any]:
    """repeats.add_counts's statement."""
    mark = "?" if is_sqlite else "{}"
    by_id = " ".join(f"WHEN {mark} THEN {mark}" for _ in counts)
    sql = (
        f"UPDATE incidents SET alert_count = alert_count + CASE id {by_id} END, "  # noqa: S608
        f"last_alert_at = CASE id {by_id} END "
        f"WHERE id IN ({','.join([mark] * len(counts))}) AND open_dedup_key IS NOT NULL"
    )
    params: list[Any] = [v for c in counts for v in (c.incident_id, c.alerts)]
    params += [v for c in counts for v in (c.incident_id, c.last_alert_at)]
    params += [c.incident_id for c in counts]
    if is_sqlite:
        return sql, tuple(params)
    return sql.format(*map(mysql_literal, params)), None


async def _claimed(connection: AsyncConnection, *, lock: bool) -> set[int]:
    """OutboxStore's claim: the oldest rows, their payloads, and the per-incident order check; the ids kept."""
    stmt = sa.select(outbox.c.id, outbox.c.event_row_id, outbox.c.incident_id).order_by(outbox.c.id).limit(OUTBOX_CLAIM)
    if lock:
        stmt = stmt.with_for_update(skip_locked=True)
    claimed = (await connection.execute(stmt)).fetchall()
    if not claimed:
        return set()
    payloads = {
        int(r.id): (str(r.event_id), str(r.payload).encode())
        for r in await connection.execute(
            sa.select(incident_events.c.id, incident_events.c.event_id, incident_events.c.payload).where(
                incident_events.c.id.in_([int(r.event_row_id) for r in claimed])
            )
        )
    }
    queued: dict[int, list[int]] = {}
    for incident_id, row_id in await connection.execute(
        sa.select(outbox.c.incident_id, outbox.c.id)
        .where(outbox.c.incident_id.in_(sorted({int(r.incident_id) for r in claimed})))
        .order_by(outbox.c.id)
    ):
        queued.setdefault(int(incident_id), []).append(int(row_id))
    kept: set[int] = set()
    position: dict[int, int] = {}
    for r in claimed:
        line, index = queued.get(int(r.incident_id), []), position.get(int(r.incident_id), 0)
        if index < len(line) and line[index] == r.id and int(r.event_row_id) in payloads:
            kept.add(int(r.id))
            position[int(r.incident_id)] = index + 1
    return kept


async def _comments(connection: AsyncConnection, ids: Sequence[int]) -> dict[int, list[str]]:
    if not ids:
        return {}
    found: dict[int, list[str]] = {}
    for incident_id, body in await connection.execute(
        sa.select(incident_comments.c.incident_id, incident_comments.c.body)
        .where(incident_comments.c.incident_id.in_(ids))
        .order_by(incident_comments.c.incident_id, incident_comments.c.position)
    ):
        found.setdefault(int(incident_id), []).append(str(body))
    return found


Side = DatabasesSide | SqlAlchemySide


@dataclass
class Fixture:
    """What the operations work on, seeded once per database through the `Db` seam."""

    incident_ids: list[int]
    repeat_keys: list[list[str]]
    event_row_ids: list[int]
    next_outbox_incident: itertools.count[int] = field(default_factory=lambda: itertools.count(10**9))


async def seed(db: Db, concurrency: int) -> Fixture:
    rows = Rows("seed")
    now = _now()
    async with db.write():
        incident_ids = await _insert(db, "incidents", rows.group(SEED_INCIDENTS, now))
        comments = [
            {"incident_id": i, "position": p, "body": f"comment {p} of {i}", "created_at": now}
            for i in incident_ids[::3]
            for p in range(2)
        ]
        await _insert(db, "incident_comments", comments)
        keys = [[f"storm-{t}-{k}" for k in range(REPEAT_KEYS)] for t in range(concurrency)]
        await _insert(db, "incidents", [Rows.incident(now, key) for task in keys for key in task])
        event_row_ids = await _insert(db, "incident_events", [rows.event(i, now) for i in incident_ids])
    return Fixture(incident_ids, keys, event_row_ids)


async def fill_outbox(db: Db, fixture: Fixture, count: int) -> None:
    """`count` outbox rows, each of its own incident (so the order check keeps them all)."""
    now = _now()
    entries = [
        Rows.outbox(fixture.event_row_ids[n % len(fixture.event_row_ids)], next(fixture.next_outbox_incident), now)
        for n in range(count)
    ]
    async with db.write():
        await _insert(db, "outbox", entries)


async def _insert(db: Db, table: str, rows: list[Row]) -> list[int]:
    return await bulk_insert_rows(db, TABLES[table], rows, returning_ids=table != "incident_comments")


@dataclass
class Round:
    ops: int
    wall_s: float
    cpu_s: float
    server_cpu_s: float | None

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_op(self) -> float:
        return 1000 * self.cpu_s / self.ops if self.ops else 0.0


async def _measure(
    task: Callable[[int, float], Awaitable[int]], tasks: int, seconds: float, server_pid: int | None
) -> Round:
    server_before = cpu_seconds(server_pid) if server_pid else None
    cpu_before, started = time.process_time(), time.monotonic()
    counts = await asyncio.gather(*(task(index, started + seconds) for index in range(tasks)))
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_before
    server_after = cpu_seconds(server_pid) if server_pid else None
    server = None if server_before is None or server_after is None else server_after - server_before
    return Round(sum(counts), wall, cpu, server)


def _until(op: Callable[[int], Awaitable[object]]) -> Callable[[int, float], Awaitable[int]]:
    """A task running `op(task index)` until the deadline; the operations it finished."""

    async def task(index: int, deadline: float) -> int:
        done = 0
        while time.monotonic() < deadline:
            await op(index)
            done += 1
        return done

    return task


def _drain(side: Side) -> Callable[[int, float], Awaitable[int]]:
    """Claim until the outbox is empty (the deadline is ignored: a round is a fixed backlog)."""

    async def task(_index: int, _deadline: float) -> int:
        claims = 0
        while await side.outbox_claim_delete():
            claims += 1
        return claims

    return task


async def measure_database(
    label: str, url: str, server_pid: int | None, options: DriverOptions
) -> dict[str, dict[str, Any]]:
    base = DatabasesSide(url, options.concurrency)
    sides: list[Side] = [
        base,
        SqlAlchemySide(url, options.concurrency),
        SqlAlchemySide(url, options.concurrency, same_sql=True),
    ]
    for side in sides:
        await side.open()
    try:
        fixture = await seed(base.db, options.concurrency)
        rng = random.Random(7)
        found: dict[str, dict[str, Any]] = {}
        rows = Rows(f"{label}-{time.time_ns()}")

        def creates(side: Side) -> Callable[[int, float], Awaitable[int]]:
            return _until(lambda _i: side.create_group(rows, options.group))

        def repeats(side: Side) -> Callable[[int, float], Awaitable[int]]:
            return _until(lambda i: side.repeats_batch(fixture.repeat_keys[i]))

        def reads(side: Side) -> Callable[[int, float], Awaitable[int]]:
            return _until(lambda _i: side.read_by_id(rng.choice(fixture.incident_ids)))

        def lists(side: Side) -> Callable[[int, float], Awaitable[int]]:
            return _until(lambda _i: side.list_page())

        plain = [s for s in sides if not (isinstance(s, SqlAlchemySide) and s.same_sql)]
        operations: list[tuple[str, list[Side], Callable[[Side], Callable[[int, float], Awaitable[int]]]]] = [
            ("create_group", sides, creates),
            ("outbox_claim_delete", plain, _drain),
            ("repeats_batch", plain, repeats),
            ("read_by_id", plain, reads),
            ("list", plain, lists),
        ]
        for name, variants, make in operations:
            is_outbox = name == "outbox_claim_delete"
            # One claiming task, as the relay runs; 32 concurrent claims deadlock each other on MariaDB (1213).
            tasks = 1 if is_outbox else options.concurrency
            measured: dict[str, list[Round]] = {_variant(s): [] for s in variants}
            for index in range(options.rounds + 1):  # the first round of each side warms it up, unmeasured
                for side in variants:
                    if is_outbox:
                        claims = options.outbox_claims if index else max(2, options.outbox_claims // 10)
                        await fill_outbox(base.db, fixture, claims * OUTBOX_CLAIM)
                    seconds = options.seconds if index else options.warmup
                    result = await _measure(make(side), tasks, seconds, server_pid)
                    if index:
                        measured[_variant(side)].append(result)
            found[name] = _summary(measured, tasks)
            say(f"  {label} {name}: " + _line(found[name]))
        return found
    finally:
        for side in sides:
            await side.close()


def _variant(side: Side) -> str:
    if isinstance(side, SqlAlchemySide) and side.same_sql:
        return "sqlalchemy_same_sql"
    return side.name


def _summary(measured: dict[str, list[Round]], tasks: int) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for name, rounds in measured.items():
        variants[name] = {
            "ops_per_s_rounds": [round(r.ops_per_s, 1) for r in rounds],
            "cpu_ms_per_op_rounds": [round(r.cpu_ms_per_op, 4) for r in rounds],
            "ops_per_s": round(statistics.median(r.ops_per_s for r in rounds), 1),
            "cpu_ms_per_op": round(statistics.median(r.cpu_ms_per_op for r in rounds), 4),
            "ops": sum(r.ops for r in rounds),
        }
        server = [1000 * r.server_cpu_s / r.ops for r in rounds if r.server_cpu_s is not None and r.ops]
        if server:
            variants[name]["server_cpu_ms_per_op"] = round(statistics.median(server), 4)
    base = variants[BASE]
    ratios = {
        name: {
            "ops_per_s": _ratio(v["ops_per_s"], base["ops_per_s"]),
            "cpu_per_op": _ratio(v["cpu_ms_per_op"], base["cpu_ms_per_op"]),
        }
        for name, v in variants.items()
        if name != BASE
    }
    return {"tasks": tasks, "variants": variants, "ratios_vs_databases": ratios}


def _ratio(value: float, base: float) -> float | None:
    return round(value / base, 3) if base else None


def _line(op: dict[str, Any]) -> str:
    base = op["variants"][BASE]
    parts = [f"databases {base['ops_per_s']:,.0f}/s {base['cpu_ms_per_op']:.3f} ms CPU"]
    for name, ratio in op["ratios_vs_databases"].items():
        parts.append(f"{name} {ratio['ops_per_s']}x rate, {ratio['cpu_per_op']}x CPU")
    return "; ".join(parts)


async def run_driver_phase(databases: dict[str, tuple[str, int | None]], options: DriverOptions) -> dict[str, Any]:
    """Each of `databases` (label → migrated URL, the server's pid or None) measured through both drivers."""
    found: dict[str, Any] = {
        "method": __doc__,
        "rounds": options.rounds,
        "seconds_each": options.seconds,
        "concurrency": options.concurrency,
        "create_group_size": options.group,
        "outbox_claim": OUTBOX_CLAIM,
        "outbox_claims_per_round": options.outbox_claims,
        "order": "interleaved: databases, sqlalchemy, (sqlalchemy_same_sql,) repeated; one unmeasured warm-up each",
        "cpu": "time.process_time() of the benchmark process per operation (client side, SQLite included)",
        "databases": {},
    }
    for label, (url, pid) in databases.items():
        say(f"driver: {label}, {options.rounds} interleaved rounds of {options.seconds:g}s per side")
        found["databases"][label] = await measure_database(label, url, pid, options)
    return found


def driver_options(*, quick: bool, duration: float, concurrency: int) -> DriverOptions:
    if quick:
        return DriverOptions(rounds=2, seconds=0.3, concurrency=concurrency, outbox_claims=10, warmup=0.1)
    return DriverOptions(rounds=3, seconds=min(duration, 3.0), concurrency=concurrency)


def sqlite_url(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{folder / 'driver.db'}"


async def run_bench_driver_phase(infra: Infra, options: Options, workdir: Path) -> dict[str, Any]:
    """The phase on the bench's own MariaDB and on a SQLite file, each freshly migrated."""
    infra.mariadb.sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;")
    mariadb_url = f"{infra.mariadb.admin_url}/{DATABASE}"
    sqlite = sqlite_url(workdir / "driver")
    for url in (mariadb_url, sqlite):
        await asyncio.to_thread(migrate, url)
    chosen = driver_options(quick=options.quick, duration=options.duration, concurrency=options.concurrency)
    return await run_driver_phase({"mariadb": (mariadb_url, infra.pids["mariadbd"]), "sqlite": (sqlite, None)}, chosen)
