"""Convergence under chaos: thousands of random actions while services are SIGKILLed and the outside
systems fail at random; afterwards each outside system holds exactly one object per incident, in the
database's final state, with every comment once and in order."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos.load import LoadPlan
from tests.chaos.monkey import ChaosPlan
from tests.chaos.scenario import Scenario, run
from tests.support.mariadb import MariaDB

pytestmark = [pytest.mark.slow, pytest.mark.mysql]


@pytest.mark.timeout(600)
async def test_everything_converges_after_chaos(tmp_path: Path, own_mariadb: MariaDB, own_database_url: str) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(100_000))  # in the summary, to replay a run
    scenario = Scenario(load=LoadPlan(seed=seed), chaos=ChaosPlan(seed=seed))
    summary = await run(scenario, tmp_path, own_database_url, own_mariadb)
    summary.write()
    print(summary.line())
    explanation = summary.explain()
    assert summary.settle_error is None, explanation
    assert summary.stream_error is None, explanation
    assert summary.kills > 0 and summary.ok > 0, explanation
    assert any(line.endswith("killed mariadb") for line in summary.timeline), explanation
    assert summary.pauses and min(summary.pauses) >= scenario.chaos.pause[0], explanation
    assert summary.deadletters == 0, explanation
    assert summary.duplicates == 0, explanation
    assert summary.lost == 0, explanation
    assert summary.converged == 100.0, explanation
    # Responders acted from Slack, Jira and Zendesk too, and those actions were answered.
    assert all(summary.outside.get(f"{vendor}:ok", 0) > 0 for vendor in ("slack", "jira", "zendesk")), summary.outside
