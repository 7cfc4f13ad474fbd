"""What a load phase drives and how it measures: the running API, wrk, the probes."""

from __future__ import annotations

from dataclasses import dataclass

from scripts.bench.catchup import Probe
from scripts.bench.options import Options
from scripts.bench.wrk import Wrk


@dataclass(frozen=True)
class Target:
    api_url: str
    wrk: Wrk
    probe: Probe
    pids: dict[str, int]
    """The processes whose CPU a phase counts."""

    @property
    def options(self) -> Options:
        return self.wrk.options
