"""The half-rate phase: creation at a fixed rate (half the measured maximum), open loop, then catch-up."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from scripts.bench.catchup import CatchUp, Probe
from scripts.bench.openloop import OpenLoopResult, run_open_loop
from scripts.bench.options import Options
from scripts.bench.procstats import CpuWindow

HALF_MESSAGE = "bench half"


@dataclass
class RatePhase:
    load: OpenLoopResult
    catch_up: CatchUp
    cpu_s: dict[str, float]
    wall_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            **self.load.as_dict(),
            "catch_up": self.catch_up.as_dict(),
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
        }


async def run_rate_phase(api_url: str, rate: float, options: Options, probe: Probe, pids: dict[str, int]) -> RatePhase:
    parsed = urlparse(api_url)
    assert parsed.hostname is not None and parsed.port is not None
    window = CpuWindow(pids).start()
    started = time.monotonic()
    load = await run_open_loop(
        parsed.hostname,
        parsed.port,
        "/incident/",
        json.dumps({"message": HALF_MESSAGE}).encode(),
        rate=max(rate, 1.0),
        duration=options.duration,
        connections=options.concurrency,
    )
    catch_up = await probe.wait_drained(load.ended_at, options.catchup_timeout)
    return RatePhase(load, catch_up, window.stop(), round(time.monotonic() - started, 3))
