"""The HTTP load generator: wrk, driven by a Lua script whose done() hook prints one JSON line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scripts.bench.children import Children
from scripts.bench.options import Options

MARKER = "BENCH_WRK_JSON "

# wrk calls done() once, after every thread stopped; latencies are in microseconds.
_LUA = """
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,'
    .. '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d},'
    .. '"latency_us":{"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d,"mean":%%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


# Instead of one fixed request: a comment on a random incident among those the API phase created.
_RANDOM_COMMENT = """
local lo, hi = %(lo)d, %(hi)d
request = function()
  return wrk.format(nil, "/incident/" .. math.random(lo, hi) .. "/comments", nil, wrk.body)
end
"""


class WrkMissing(RuntimeError):
    pass


def wrk_binary() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if not found:
        raise WrkMissing(
            "wrk is not installed: the benchmark's load generator is wrk (Debian/Ubuntu: apt-get install wrk)"
        )
    return found


def wrk_version() -> str:
    out = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split(" [")[0].strip() if first else "wrk"


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    connections: int
    threads: int
    wrk_cpu_s: float
    ended_at: float
    """Wall-clock time (time.time()) when wrk exited: the load's end, within a few milliseconds."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def lua_script(
    folder: Path, body: str, comment_on: tuple[int, int] | None = None, request_lua: str = "", label: str = "post"
) -> Path:
    path = folder / ("comment.lua" if comment_on is not None else f"{label}.lua" if request_lua else "post.lua")
    text = _LUA % {"body": json.dumps(body), "marker": MARKER}
    if comment_on is not None:
        text += _RANDOM_COMMENT % {"lo": comment_on[0], "hi": comment_on[1]}
    text += request_lua
    path.write_text(text)
    return path


def parse(output: str) -> dict[str, object]:
    for line in output.splitlines():
        if line.startswith(MARKER):
            parsed: dict[str, object] = json.loads(line[len(MARKER) :])
            return parsed
    raise RuntimeError(f"wrk printed no summary:\n{output[-2000:]}")


async def _run(argv: list[str], out_path: Path, children: Children) -> tuple[int, float]:
    """Run wrk to its end; returns its exit code and CPU seconds (from wait4's rusage)."""
    # Popen + wait4 rather than asyncio's subprocess: wait4 gives wrk's own CPU time (rusage).
    with out_path.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: ASYNC220, S603
    children.add_popen("wrk", proc)
    try:
        _, status, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        raise
    finally:
        children.forget(proc)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Wrk:
    """wrk as this run uses it: the run's connections, threads and duration, work folder and children."""

    options: Options
    workdir: Path
    children: Children

    async def load(
        self,
        url: str,
        *,
        body: str,
        label: str,
        seconds: float | None = None,
        comment_on: tuple[int, int] | None = None,
        request_lua: str = "",
    ) -> WrkResult:
        """`run_wrk` for the run's duration, unless `seconds` is given."""
        return await run_wrk(
            url,
            body=body,
            duration=self.options.duration if seconds is None else seconds,
            connections=self.options.concurrency,
            threads=self.options.threads,
            workdir=self.workdir,
            children=self.children,
            label=label,
            comment_on=comment_on,
            request_lua=request_lua,
        )


async def run_wrk(
    url: str,
    *,
    body: str,
    duration: float,
    connections: int,
    threads: int,
    workdir: Path,
    children: Children,
    label: str,
    comment_on: tuple[int, int] | None = None,
    request_lua: str = "",
) -> WrkResult:
    """wrk -c connections for `duration` seconds against `url`, POSTing `body` (to `url`, or as a comment on
    a random incident with an id in `comment_on`, or what a Lua `request` function in `request_lua` builds)."""
    script = lua_script(workdir, body, comment_on, request_lua, label)
    argv = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out_path = workdir / f"wrk-{label}.txt"
    code, cpu = await _run(argv, out_path, children)
    ended = time.time()
    output = out_path.read_text(errors="replace")
    if code != 0:
        raise RuntimeError(f"wrk exited with {code}:\n{output[-2000:]}")
    data = parse(output)
    lat = data["latency_us"]
    errors = data["errors"]
    assert isinstance(lat, dict) and isinstance(errors, dict)
    requests = int(str(data["requests"]))
    seconds = int(str(data["duration_us"])) / 1e6
    return WrkResult(
        requests=requests,
        duration_s=round(seconds, 3),
        rps=round(requests / seconds, 1) if seconds else 0.0,
        non_2xx=int(errors["status"]),
        socket_errors=int(errors["connect"]) + int(errors["read"]) + int(errors["write"]) + int(errors["timeout"]),
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        mean_ms=round(float(lat["mean"]) / 1000, 3),
        connections=connections,
        threads=threads,
        wrk_cpu_s=round(cpu, 3),
        ended_at=ended,
    )
