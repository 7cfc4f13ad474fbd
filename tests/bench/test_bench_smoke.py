"""`python -m scripts.bench --quick` runs end to end and writes every section (no performance assertions)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = pytest.mark.slow

WORKERS = ("jira", "slack", "zendesk")
SERVICES = ("api", "eventhandler", *(f"worker-{w}" for w in WORKERS), "mariadbd", "nats-server")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(600)
def test_quick_bench_writes_every_section(tmp_path: Path) -> None:
    # No skip: .ci/run installs wrk, and a missing load generator must fail loudly.
    assert shutil.which("wrk") or Path("/usr/bin/wrk").exists(), "wrk is not installed (apt-get install wrk)"
    out = tmp_path / "bench"
    run = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("JIRA_", "SLACK_", "ZENDESK_"))},
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-6000:]}"
    latest = out / "latest.json"
    assert latest.exists()
    assert len(list(out.glob("bench-*.json"))) == 1
    results = json.loads(latest.read_text())
    assert "incidents benchmark" in run.stdout  # the table

    assert results["meta"]["quick"] is True
    assert results["meta"]["load_generator"].startswith("wrk")

    base = results["baselines"]
    assert {"bare_litestar", "bare_litestar_h11", "raw_db", "raw_jetstream"} <= set(base)
    assert base["bare_litestar"]["requests"] > 0 and base["bare_litestar_h11"]["requests"] > 0
    assert "h11" in base["bare_litestar_h11"]["server"]
    assert base["raw_db"]["transactions"] > 0
    assert base["raw_jetstream"]["messages"] > 0

    api = results["api"]
    for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "requests", "non_2xx", "catch_up"):
        assert key in api
    assert api["requests"] > 0

    changes = results["changes"]
    assert changes["requests"] > 0 and changes["non_2xx"] == 0 and changes["incidents"] > 0
    assert changes["catch_up"]["seconds"] is not None
    assert "POST /incident/{id}/comments" in run.stdout

    storm = results["alert_storm"]  # new groups, then repeats over the open groups
    for load in (storm["new_groups"], storm["repeats"]):
        assert load["accepted"] > 0 and load["non_2xx"] == 0
        for key in ("sql_statements", "select", "update", "commit", "api_cpu_ms"):
            assert key in load["per_notification"]
    assert storm["alert_count_sum"] == storm["accepted_total"] > 0
    assert "alert storm" in run.stdout

    e2e = results["end_to_end"]
    assert "seconds" in e2e["max_rate"]["catch_up"]
    for phase in ("max_rate", "half_rate"):
        assert "p99_ms" in e2e[phase]["commit_to_stream"]
        delivery = e2e[phase]["delivery"]
        assert set(delivery) == set(WORKERS)
        for stats in delivery.values():
            assert stats["events"] > 0
            for key in ("acked", "p50_ms", "p99_ms"):
                assert key in stats
    load = e2e["half_rate"]["load"]
    for key in ("target_rate", "achieved_rate", "p99_ms", "method", "catch_up"):
        assert key in load

    processes = results["resources"]["processes"]
    assert set(SERVICES) <= set(processes)
    for usage in processes.values():
        assert "cpu_s_total" in usage and "peak_rss_mb" in usage

    assert {"api_vs_bare_litestar", "api_vs_bare_litestar_h11", "storm_repeats_vs_new"} <= set(results["ratios"])
    assert "total" in results["cpu_per_incident_ms"]
    assert len(results["targets"]) == 9  # 4 of the pipeline, the h11 ratio, 4 of the alert storm
    assert all(isinstance(t["met"], bool) for t in results["targets"])

    vendor = results["vendor"]  # two replicas per worker drain a backlog against local vendors
    assert set(vendor["workers"]) == set(WORKERS) and vendor["replicas"] == 2
    for figures in vendor["workers"].values():
        assert figures["drain_s"] and figures["events_per_s"] > 0
        assert figures["calls_per_event"] > 0 and figures["cpu_ms_per_event"] > 0
    assert len(vendor["targets"]) == 3
    assert "vendor phase" in run.stdout

    two_way = results["two_way"]  # its own system: Slack clicks under comments, Jira → Slack at half rate
    clicks = two_way["slack_clicks_under_changes"]
    assert clicks["clicks"] > 0 and clicks["p99_ms"] is not None
    assert all(outcome.startswith("200 ") for outcome in clicks["outcomes"]), clicks["outcomes"]
    jira = two_way["jira_webhook_to_slack_at_half_rate"]
    assert jira["webhooks"] > 0 and jira["shown"] == jira["webhooks"] and jira["p99_ms"] is not None
    assert "Slack click answer" in run.stdout
    # The durability choice and tracing, each on and off in the same run: ratios of interleaved rounds.
    costs = results["costs"]
    for measure in (
        costs["durability"]["one_synchronous_publisher"],
        costs["durability"]["event_handler_store_path"],
        costs["tracing"]["api_create_rate"],
        costs["tracing"]["api_cpu_per_request"],
    ):
        assert len(measure["base_rounds"]) == len(measure["variant_rounds"]) == costs["rounds"]
        assert measure["ratio"] > 0
    assert costs["tracing"]["spans_received"] > 0  # the traced API really exported
    assert "sync always" in run.stdout and "tracing on" in run.stdout
    # The driver layer: databases against SQLAlchemy's async engine, on MariaDB and SQLite, interleaved rounds.
    driver = results["driver"]["databases"]
    assert set(driver) == {"mariadb", "sqlite"}
    for operations in driver.values():
        assert set(operations) == {"create_group", "outbox_claim_delete", "repeats_batch", "read_by_id", "list"}
        assert all(op["ratios_vs_databases"]["sqlalchemy"]["cpu_per_op"] > 0 for op in operations.values())
    assert "driver layer" in run.stdout

    # Everything the benchmark started is stopped.
    still_running = {name: pid for name, pid in results["meta"]["pids"].items() if _alive(pid)}
    assert not still_running
