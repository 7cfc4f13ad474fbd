"""An outside system down for a minute: its events wait and are delivered afterwards; the others keep up.

(MariaDB and NATS outages are covered in tests/e2e.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.outage import OutagePlan, run_outage

pytestmark = [pytest.mark.slow, pytest.mark.mysql]


@pytest.mark.timeout(480)
async def test_jira_down_for_a_minute_then_everything_is_delivered(tmp_path: Path, mariadb_url: str) -> None:
    report = await run_outage(OutagePlan(vendor="jira", seconds=70), tmp_path, mariadb_url)
    report.write()
    print(report.line())
    explanation = "\n".join([report.line(), *report.problems[:40], f"logs: {report.logs}"])
    # During the outage: the other systems caught up, jira's events waited and were retried with backoff.
    assert 0 < report.others_caught_up_after < 35, explanation
    assert report.answered_503 > 0 and report.refused_phase, explanation
    # Retried in the worker (the incident parked, its messages held), not redelivered by JetStream.
    assert report.waiting_seen > 0, explanation
    assert report.max_deliveries > 1, explanation
    # Afterwards: nothing dead-lettered, everything delivered once.
    assert report.deadletters == 0, explanation
    assert (report.duplicates, report.lost, report.converged) == (0, 0, 100.0), explanation
