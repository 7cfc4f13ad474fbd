"""What a load phase drives and how it measures: the running API, the run's options, the probes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.bench.catchup import Probe
from scripts.bench.children import Children
from scripts.bench.options import Options
from scripts.bench.wrk import WrkResult, wrk_load


@dataclass(frozen=True)
class Target:
    api_url: str
    options: Options
    workdir: Path
    children: Children
    probe: Probe
    pids: dict[str, int]
    """The processes whose CPU a phase counts."""

    async def wrk(
        self,
        path: str,
        *,
        body: str,
        label: str,
        seconds: float | None = None,
        comment_on: tuple[int, int] | None = None,
        request_lua: str = "",
    ) -> WrkResult:
        """wrk against `path` of the API with the run's connections and threads."""
        return await wrk_load(
            self.options,
            f"{self.api_url}{path}",
            body=body,
            workdir=self.workdir,
            children=self.children,
            label=label,
            seconds=seconds,
            comment_on=comment_on,
            request_lua=request_lua,
        )
