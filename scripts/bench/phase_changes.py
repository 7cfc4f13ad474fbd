"""The changes phase: comments on the incidents the API phase created, at full speed with wrk.

Alert storms are mostly changes (acknowledge, comment, resolve) of open incidents: their write path
(load under lock, update, events, outbox, one transaction) differs from a create's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scripts.bench.catchup import CatchUp, Probe
from scripts.bench.children import Children
from scripts.bench.options import Options
from scripts.bench.procstats import CpuWindow
from scripts.bench.wrk import WrkResult, run_wrk

COMMENT = "bench change"


@dataclass
class ChangesPhase:
    wrk: WrkResult
    catch_up: CatchUp
    cpu_s: dict[str, float]
    """CPU seconds per process over the load and its catch-up."""
    incidents: int

    def as_dict(self) -> dict[str, object]:
        return {
            "request": "POST /incident/{random id}/comments",
            "incidents": self.incidents,
            **self.wrk.as_dict(),
            "catch_up": self.catch_up.as_dict(),
            "cpu_s": self.cpu_s,
        }


async def run_changes_phase(
    api_url: str,
    ids: tuple[int, int],
    options: Options,
    workdir: Path,
    children: Children,
    probe: Probe,
    pids: dict[str, int],
) -> ChangesPhase:
    window = CpuWindow(pids).start()
    result = await run_wrk(
        f"{api_url}/incident/",
        body=json.dumps({"comment": COMMENT}),
        duration=options.duration,
        connections=options.concurrency,
        threads=options.threads,
        workdir=workdir,
        children=children,
        label="changes",
        comment_on=ids,
    )
    catch_up = await probe.wait_drained(result.ended_at, options.catchup_timeout)
    return ChangesPhase(result, catch_up, window.stop(extra_s=result.wrk_cpu_s), ids[1] - ids[0] + 1)
