"""The API phases: incident creation, then comments on those incidents (alert storms are mostly changes of
open incidents), each at full speed with wrk, then the catch-up until every worker is done."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.bench.catchup import CatchUp, Probe
from scripts.bench.children import Children
from scripts.bench.options import Options
from scripts.bench.procstats import CpuWindow
from scripts.bench.wrk import WrkResult, wrk_load

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


async def warm_up(api_url: str, options: Options, workdir: Path, children: Children, probe: Probe) -> None:
    """Unmeasured load (imports, pools, JIT-less caches), then wait until the pipeline is idle again."""
    if not options.warmup:
        return
    result = await wrk_load(
        options,
        f"{api_url}/incident/",
        body=body(WARMUP_MESSAGE),
        workdir=workdir,
        children=children,
        label="api-warmup",
        seconds=options.warmup,
    )
    await probe.wait_drained(result.ended_at, options.catchup_timeout)


async def run_api_phase(
    api_url: str, options: Options, workdir: Path, children: Children, probe: Probe, pids: dict[str, int]
) -> ApiPhase:
    return await _measured(api_url, body(MAX_MESSAGE), "api", options, workdir, children, probe, pids)


async def run_changes_phase(
    api_url: str,
    ids: tuple[int, int],
    options: Options,
    workdir: Path,
    children: Children,
    probe: Probe,
    pids: dict[str, int],
) -> ApiPhase:
    """Comments on random incidents with ids in `ids` (those of the API phase)."""
    comment = json.dumps({"comment": CHANGE_COMMENT})
    phase = await _measured(api_url, comment, "changes", options, workdir, children, probe, pids, ids)
    phase.incidents = ids[1] - ids[0] + 1
    return phase


async def _measured(
    api_url: str,
    payload: str,
    label: str,
    options: Options,
    workdir: Path,
    children: Children,
    probe: Probe,
    pids: dict[str, int],
    comment_on: tuple[int, int] | None = None,
) -> ApiPhase:
    window = CpuWindow(pids).start()
    started = time.monotonic()
    result = await wrk_load(
        options,
        f"{api_url}/incident/",
        body=payload,
        workdir=workdir,
        children=children,
        label=label,
        comment_on=comment_on,
    )
    catch_up = await probe.wait_drained(result.ended_at, options.catchup_timeout)
    return ApiPhase(result, catch_up, window.stop(extra_s=result.wrk_cpu_s), round(time.monotonic() - started, 3))
