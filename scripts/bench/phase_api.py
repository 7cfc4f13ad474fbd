"""The API phase: incident creation at full speed with wrk, then the catch-up until every worker is done."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.bench.catchup import CatchUp, Probe
from scripts.bench.children import Children
from scripts.bench.options import Options
from scripts.bench.procstats import CpuWindow
from scripts.bench.wrk import WrkResult, run_wrk

WARMUP_MESSAGE = "bench warmup"
MAX_MESSAGE = "bench max"


@dataclass
class ApiPhase:
    wrk: WrkResult
    catch_up: CatchUp
    cpu_s: dict[str, float]
    """CPU seconds per process over the load and its catch-up."""
    wall_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "server": "uvicorn (1 worker), python -m services.api",
            **self.wrk.as_dict(),
            "catch_up": self.catch_up.as_dict(),
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
        }


def body(message: str) -> str:
    return json.dumps({"message": message})


async def warm_up(api_url: str, options: Options, workdir: Path, children: Children, probe: Probe) -> None:
    """Unmeasured load (imports, pools, JIT-less caches), then wait until the pipeline is idle again."""
    if not options.warmup:
        return
    result = await run_wrk(
        f"{api_url}/incident/",
        body=body(WARMUP_MESSAGE),
        duration=options.warmup,
        connections=options.concurrency,
        threads=options.threads,
        workdir=workdir,
        children=children,
        label="api-warmup",
    )
    await probe.wait_drained(result.ended_at, options.catchup_timeout)


async def run_api_phase(
    api_url: str, options: Options, workdir: Path, children: Children, probe: Probe, pids: dict[str, int]
) -> ApiPhase:
    window = CpuWindow(pids).start()
    started = time.monotonic()
    result = await run_wrk(
        f"{api_url}/incident/",
        body=body(MAX_MESSAGE),
        duration=options.duration,
        connections=options.concurrency,
        threads=options.threads,
        workdir=workdir,
        children=children,
        label="api",
    )
    catch_up = await probe.wait_drained(result.ended_at, options.catchup_timeout)
    return ApiPhase(result, catch_up, window.stop(extra_s=result.wrk_cpu_s), round(time.monotonic() - started, 3))
