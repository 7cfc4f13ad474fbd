"""Bare-Litestar baseline: `scripts.bench.bare_app` under uvicorn (1 worker), loaded by wrk like the API."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from scripts.bench.children import Children
from scripts.bench.options import Options
from scripts.bench.procstats import CpuWindow, peak_rss_mb
from scripts.bench.system import wait_http_ok
from scripts.bench.wrk import Wrk, WrkResult
from tests.support.processes import Process, free_port
from tests.support.services import service_env

BODY = '{"message": "bench bare"}'


@dataclass
class BareResult:
    wrk: WrkResult
    server: str
    cpu_s: dict[str, float]
    """CPU seconds of the server ("bare"), the benchmark process and everything else on the machine."""
    peak_rss_mb: float | None

    def as_dict(self) -> dict[str, object]:
        return {"server": self.server, **self.wrk.as_dict(), "cpu_s": self.cpu_s, "peak_rss_mb": self.peak_rss_mb}


SERVERS = {
    "httptools": "uvicorn (1 worker), same options as python -m services.api (httptools, uvloop)",
    "h11": "uvicorn (1 worker) --http h11 --loop asyncio (pure Python)",
}


async def run_bare_litestar(options: Options, workdir: Path, children: Children, http: str = "httptools") -> BareResult:
    port = free_port()
    name = "bare-litestar" if http == "httptools" else f"bare-litestar-{http}"
    argv = [sys.executable, "-m", "scripts.bench.bare_app", str(port), *([http] if http != "httptools" else [])]
    process = children.add(Process(name, argv, service_env(), workdir / "logs" / f"{name}.log")).start()
    try:
        url = f"http://127.0.0.1:{port}/incident/"
        await _wait_post(url, process)
        wrk = Wrk(options, workdir, children)
        if options.warmup:
            await wrk.load(url, body=BODY, label=f"{name}-warmup", seconds=options.warmup)
        window = CpuWindow({"bare": process.pid}).start()
        result = await wrk.load(url, body=BODY, label=name)
        cpu = window.stop(extra_s=result.wrk_cpu_s)
        rss = peak_rss_mb(process.pid)
    finally:
        children.stop(process)
    return BareResult(result, SERVERS[http], cpu, rss)


async def _wait_post(url: str, process: Process) -> None:
    await wait_http_ok(url.replace("/incident/", "/schema/openapi.json"), process, timeout=30)
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(url, json={"message": "hello"})
    if response.json() != {"status": "INCIDENT CREATED", "ID": "1"}:
        raise RuntimeError(f"bare Litestar answered {response.status_code} {response.text}")
