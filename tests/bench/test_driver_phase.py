"""The driver phase of `just bench` at tiny size: both drivers do the same work, and every figure is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bench.phase_driver import (
    DatabasesSide,
    DriverOptions,
    Rows,
    Side,
    SqlAlchemySide,
    fill_outbox,
    run_driver_phase,
    seed,
)
from tests.support.processes import ROOT

pytestmark = pytest.mark.mysql

OPERATIONS = ("create_group", "outbox_claim_delete", "repeats_batch", "read_by_id", "list")


async def test_driver_phase_reports_rate_cpu_and_ratios_for_every_operation(database_url: str) -> None:
    options = DriverOptions(rounds=2, seconds=0.05, concurrency=4, group=3, outbox_claims=2, warmup=0.02)

    found = await run_driver_phase({"db": (database_url, None)}, options)

    figures = found["databases"]["db"]
    assert set(figures) == set(OPERATIONS)
    for name, operation in figures.items():
        expected = {"databases", "sqlalchemy", "sqlalchemy_same_sql"} if name == "create_group" else None
        variants = operation["variants"]
        assert expected is None or set(variants) == expected
        assert {"databases", "sqlalchemy"} <= set(variants)
        for figures_of_side in variants.values():
            assert len(figures_of_side["ops_per_s_rounds"]) == len(figures_of_side["cpu_ms_per_op_rounds"]) == 2
            assert figures_of_side["ops"] > 0 and figures_of_side["cpu_ms_per_op"] > 0
        assert set(operation["ratios_vs_databases"]) == set(variants) - {"databases"}
        assert all(r["cpu_per_op"] > 0 and r["ops_per_s"] > 0 for r in operation["ratios_vs_databases"].values())


async def test_sqlalchemy_side_reads_and_writes_what_the_databases_side_does(database_url: str) -> None:
    base = DatabasesSide(database_url, 4)
    sides = [SqlAlchemySide(database_url, 4), SqlAlchemySide(database_url, 4, same_sql=True)]
    everyone: list[Side] = [base, *sides]
    for side in everyone:
        await side.open()
    try:
        fixture = await seed(base.db, 2)
        some = fixture.incident_ids[0]
        for side in sides:
            assert await side.read_by_id(some) == await base.read_by_id(some)
            assert await side.list_page() == await base.list_page()

        rows = Rows("same-work")
        for side in everyone:
            await side.create_group(rows, 3)
        counts = await base.db.database.fetch_one(
            "SELECT (SELECT COUNT(*) FROM incidents WHERE message = 'bench driver'), "
            "(SELECT COUNT(*) FROM outbox o JOIN incident_events e ON e.id = o.event_row_id "
            "AND e.incident_id = o.incident_id), (SELECT COUNT(*) FROM idempotency_keys)"
        )
        assert counts is not None
        seeded = len(fixture.incident_ids) + 2 * 16
        # Every outbox row names its incident's own event.
        assert (counts[0], counts[1], counts[2]) == (seeded + 9, 9, 9)

        await fill_outbox(base.db, fixture, 250)
        drained = [await sides[0].outbox_claim_delete() for _ in range(2)]
        drained += [await base.outbox_claim_delete() for _ in range(2)]
        assert sum(drained) == 259
        assert await base.db.database.fetch_val("SELECT COUNT(*) FROM outbox") == 0

        keys = fixture.repeat_keys[0]
        for side in (base, sides[0]):
            await side.repeats_batch(keys)
        counted = await base.db.database.fetch_all(
            "SELECT alert_count FROM incidents WHERE open_dedup_key LIKE :keys", {"keys": "storm-0-%"}
        )
        assert [int(r[0]) for r in counted] == [2] * len(keys)
    finally:
        for side in everyone:
            await side.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_driver_only_bench_writes_its_json_and_prints_its_lines(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    run = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--driver-only", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-5000:]}"
    (written,) = out.glob("driver-*.json")
    results = json.loads(written.read_text())
    assert results["meta"]["loadavg_at_start"] and results["meta"]["versions"]["SQLAlchemy"]
    assert set(results["driver"]["databases"]) == {"mariadb", "sqlite"}
    for operations in results["driver"]["databases"].values():
        assert set(operations) == set(OPERATIONS)
    mariadb = results["driver"]["databases"]["mariadb"]
    assert all("server_cpu_ms_per_op" in op["variants"]["databases"] for op in mariadb.values())
    assert "driver layer, interleaved" in run.stdout
    assert "mariadb create_group: databases" in run.stdout and "sqlite list: databases" in run.stdout
