"""The system on a 3-node NATS cluster (R3 streams and buckets, two API replicas, two replicas of each worker):
while writes go on, the INCIDENTS stream's leader is SIGKILLed, another node is frozen and the third is
restarted. Nothing committed is lost or published twice, every outside system converges, and the API never
answers 5xx."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos.load import LoadPlan
from tests.chaos.natschaos import NatsChaosPlan
from tests.chaos.scenario import Scenario, run

pytestmark = [pytest.mark.slow, pytest.mark.mysql]


@pytest.mark.timeout(600)
async def test_nothing_is_lost_or_duplicated_when_the_nats_cluster_loses_its_leader_a_frozen_and_a_restarted_node(
    tmp_path: Path, mariadb_url: str
) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(100_000))
    scenario = Scenario(
        load=LoadPlan(incidents=80, actions=700, rate=15.0, seed=seed),
        cluster_size=3,
        api_replicas=2,
        service_chaos=False,  # the NATS cluster's chaos alone; services are killed in test_convergence
        nats_chaos=NatsChaosPlan(start_after=4.0, leader_down=4.0, freeze=10.0, gap=3.0),
        fault_rate=0.0,
    )
    summary = await run(scenario, tmp_path, mariadb_url)
    summary.write(tmp_path / "summary.json")
    print(summary.line())
    explanation = summary.explain()
    assert summary.nats is not None, explanation
    assert (summary.nats.leader_kills, summary.nats.freezes, summary.nats.restarts) == (1, 1, 1), explanation
    server_errors = {outcome: n for outcome, n in summary.outcomes.items() if outcome.startswith("http-5")}
    assert not server_errors, (summary.outcomes, explanation)
    # Two API replicas that never go down: no request is refused (404/409 from racing clients are fine).
    assert "refused" not in summary.outcomes, (summary.outcomes, explanation)
    assert summary.settle_error is None, explanation
    assert summary.stream_error is None, explanation  # every committed event stored once, in order
    assert summary.deadletters == 0, explanation
    assert summary.duplicates == 0, explanation
    assert summary.lost == 0, explanation
    assert summary.converged == 100.0, explanation
