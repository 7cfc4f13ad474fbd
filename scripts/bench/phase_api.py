"""The API phases: incident creation, then comments on those incidents (alert storms are mostly changes of
open incidents), each at full speed with wrk, then the catch-up until every worker is done."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from scripts.bench.catchup import CatchUp
from scripts.bench.procstats import CpuWindow
from scripts.bench.target import Target
from scripts.bench.wrk import WrkResult

WARMUP_MESSAGE = "bench warmup"
MAX_MESSAGE = "bench max"
CHANGE_COMMENT = "bench change"


@dataclass
class ApiPhase:
    wrk: WrkResult
    catch_up: CatchUp
    cpu_s: dict[str, float]
    """CPU seconds per process over the load and its catch-up."""
    wall_s: float
    incidents: int | None = None
    """The changes phase: how many incidents its comments went to (at random)."""

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {
            "server": "uvicorn (1 worker), python -m services.api",
            **self.wrk.as_dict(),
            "catch_up": self.catch_up.as_dict(),
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
        }
        if self.incidents is not None:
            found |= {"request": "POST /incident/{random id}/comments", "incidents": self.incidents}
        return found


def body(message: str) -> str:
    return json.dumps({"message": message})


async def warm_up(target: Target) -> None:
    """Unmeasured load (imports, pools, JIT-less caches), then wait until the pipeline is idle again."""
    options = target.options
    if not options.warmup:
        return
    url = f"{target.api_url}/incident/"
    result = await target.wrk.load(url, body=body(WARMUP_MESSAGE), label="api-warmup", seconds=options.warmup)
    await target.probe.wait_drained(result.ended_at, options.catchup_timeout)


async def run_api_phase(target: Target) -> ApiPhase:
    return await _measured(target, body(MAX_MESSAGE), "api")


async def run_changes_phase(target: Target, ids: tuple[int, int]) -> ApiPhase:
    """Comments on random incidents with ids in `ids` (those of the API phase)."""
    comment = json.dumps({"comment": CHANGE_COMMENT})
    phase = await _measured(target, comment, "changes", ids)
    phase.incidents = ids[1] - ids[0] + 1
    return phase


async def _measured(target: Target, payload: str, label: str, comment_on: tuple[int, int] | None = None) -> ApiPhase:
    window = CpuWindow(target.pids).start()
    started = time.monotonic()
    result = await target.wrk.load(f"{target.api_url}/incident/", body=payload, label=label, comment_on=comment_on)
    catch_up = await target.probe.wait_drained(result.ended_at, target.options.catchup_timeout)
    return ApiPhase(result, catch_up, window.stop(extra_s=result.wrk_cpu_s), round(time.monotonic() - started, 3))
