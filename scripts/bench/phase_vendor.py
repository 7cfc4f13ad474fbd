"""The vendor phase: two replicas of each worker drain a backlog of events against local vendors that answer
in 0-80 ms (the chaos fakes, without faults). All three workers run at once, as deployed.

Reports per worker: events/s (from all replicas ready to the consumer drained), vendor calls per event, and
worker CPU ms per event (every replica's CPU from its start, so start-up is included).

    python -m scripts.bench --vendor-only                    # this phase alone
    python -m scripts.bench --vendor-only --code-root DIR    # the workers of another checkout (before/after)
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import nats
from nats.js import JetStreamContext

from scripts.bench import meta
from scripts.bench.children import Children
from scripts.bench.procstats import tree_cpu_seconds
from scripts.bench.profiling import Profiler
from scripts.bench.system import WORKERS, code_env
from shared.events import ALL_SUBJECTS, STREAM, CloudEvent, encode_event
from shared.jetstream import incidents_stream_config, refs_bucket_config, worker_consumer_config
from tests.chaos.fakes import Vendors
from tests.fakes.incidents import IncidentFeed
from tests.support.processes import ROOT, NatsServer, Process, free_port
from tests.support.services import service_env

REPLICAS = 2
LATENCY = (0.0, 0.08)
EVENTS_PER_INCIDENT = 5
DRAIN_TIMEOUT = 600.0
TARGET_EVENTS_PER_S = 100.0
TARGET_CALLS_PER_EVENT = 3.0
TARGET_CPU_MS_PER_EVENT = 1.5


@dataclass
class WorkerFigures:
    events: int
    drain_s: float | None
    events_per_s: float | None
    calls: int
    calls_per_event: float
    cpu_s: float
    cpu_ms_per_event: float


@dataclass
class VendorPhase:
    events: int
    incidents: int
    replicas: int
    latency_ms: tuple[float, float]
    code_root: str
    loadavg_before: str
    loadavg_after: str = ""
    workers: dict[str, WorkerFigures] = field(default_factory=dict)
    targets: list[dict[str, object]] = field(default_factory=list)
    profile: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def backlog(incidents: int, seed: int) -> list[CloudEvent]:
    """Each incident: created, then four changes in a random order of kinds; incidents interleaved."""
    rng = random.Random(seed)
    feed = IncidentFeed()
    chains: list[list[CloudEvent]] = []
    for n in range(1, incidents + 1):
        events = [feed.create(f"disk full on db-{n}")]
        for step in range(EVENTS_PER_INCIDENT - 1):
            kind = rng.choice(("comment", "acknowledge", "resolve", "edit"))
            if kind == "comment":
                events.append(feed.comment(n, f"looking at it ({step})"))
            elif kind == "acknowledge":
                acked = feed.incidents[n].acknowledged == "yes"
                events.append(feed.unacknowledge(n) if acked else feed.acknowledge(n))
            elif kind == "resolve":
                resolved = feed.incidents[n].status == "resolved"
                events.append(feed.reopen(n) if resolved else feed.resolve(n))
            else:
                events.append(feed.edit(n, f"disk full on db-{n} (step {step})"))
        chains.append(events)
    # Stream order: rounds over the incidents, so that one incident's events are spread out as in a storm.
    return [chain[i] for i in range(EVENTS_PER_INCIDENT) for chain in chains]


async def prepare(js: JetStreamContext, events: list[CloudEvent]) -> None:
    await js.add_stream(incidents_stream_config())
    for worker in WORKERS:
        await js.add_consumer(STREAM, worker_consumer_config(worker, sorted(ALL_SUBJECTS)))
        await js.create_key_value(refs_bucket_config(worker))
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]
        acks = [await js.publish_async(e.nats_subject, encode_event(e), headers={"Nats-Msg-Id": e.id}) for e in chunk]
        await asyncio.gather(*acks)


def worker_process(name: str, replica: int, env: dict[str, str], logs: Path, code_root: Path) -> Process:
    env = env | code_env(code_root)
    argv = [sys.executable, "-m", "services.workers", name]
    return Process(f"{name}-{replica}", argv, env, logs / f"vendor-{name}-{replica}.log")


async def ready(url: str, process: Process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited: {process.output()[-2000:]}")
            try:
                if (await client.get(url, timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)  # polling a child's health port
    raise RuntimeError(f"{process.name} not ready after {timeout:g}s")


async def drained(js: JetStreamContext, worker: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await js.consumer_info(STREAM, worker)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return time.monotonic()
        await asyncio.sleep(0.05)  # polling the consumer
    return None


async def run_vendor_phase(
    workdir: Path,
    children: Children,
    *,
    events: int = 4000,
    code_root: Path = ROOT,
    profile_dir: Path | None = None,
    seed: int = 13,
) -> VendorPhase:
    incidents = -(-events // EVENTS_PER_INCIDENT)
    phase = VendorPhase(
        events=incidents * EVENTS_PER_INCIDENT,
        incidents=incidents,
        replicas=REPLICAS,
        latency_ms=(LATENCY[0] * 1000, LATENCY[1] * 1000),
        code_root=str(code_root),
        loadavg_before=meta.loadavg(),
    )
    server = children.start(NatsServer(workdir / "vendor-nats"))
    vendors = Vendors.start(seed, timeout=10.0, search_lag=0.0)
    vendors.set_latency(*LATENCY)
    nc = await nats.connect(server.url)
    processes: dict[str, list[Process]] = {}
    try:
        js = nc.jetstream()
        await prepare(js, backlog(incidents, seed))
        health: list[tuple[str, Process]] = []
        for name in WORKERS:
            for replica in range(1, REPLICAS + 1):
                port = free_port()
                env = service_env(
                    NATS_URL=server.url, HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(port), LOG_LEVEL="INFO"
                ) | vendors.env(name)
                env = {k: v for k, v in env.items() if not k.startswith("WORKER_")}
                process = children.add(worker_process(name, replica, env, workdir / "logs", code_root).start())
                processes.setdefault(name, []).append(process)
                health.append((f"http://127.0.0.1:{port}/health/ready", process))
        await asyncio.gather(*(ready(url, process) for url, process in health))
        started = time.monotonic()
        profiler = None
        if profile_dir is not None:
            profiler = Profiler(profile_dir, children)
            profiler.start({f"worker-{n}-1": processes[n][0].pid for n in WORKERS}, 15.0)
        ends = await asyncio.gather(*(drained(js, name, DRAIN_TIMEOUT) for name in WORKERS))
        for name, end in zip(WORKERS, ends, strict=True):
            cpu = sum(tree_cpu_seconds(p.pid) or 0.0 for p in processes[name])
            calls = len(vendors.all()[name].requests)
            seconds = None if end is None else round(end - started, 2)
            phase.workers[name] = WorkerFigures(
                events=phase.events,
                drain_s=seconds,
                events_per_s=None if not seconds else round(phase.events / seconds, 1),
                calls=calls,
                calls_per_event=round(calls / phase.events, 2),
                cpu_s=round(cpu, 2),
                cpu_ms_per_event=round(cpu * 1000 / phase.events, 3),
            )
        if profiler is not None:
            phase.profile = {"folder": str(profile_dir), "summaries": await profiler.finish()}
    finally:
        await nc.close()
        for group in processes.values():
            for process in group:
                children.stop(process)
        vendors.stop()
        if server.process is not None:
            children.stop(server.process)
    phase.loadavg_after = meta.loadavg()
    phase.targets = targets(phase)
    return phase


def targets(phase: VendorPhase) -> list[dict[str, object]]:
    figures = phase.workers.values()
    rates = [f.events_per_s for f in figures]
    slowest = None if None in rates or not rates else min(r for r in rates if r is not None)
    calls = max((f.calls_per_event for f in figures), default=None)
    cpu = max((f.cpu_ms_per_event for f in figures), default=None)
    return [
        {
            "name": f"every worker ≥ {TARGET_EVENTS_PER_S:g} events/s, all three at once",
            "value": slowest,
            "met": slowest is not None and slowest >= TARGET_EVENTS_PER_S,
        },
        {
            "name": f"≤ {TARGET_CALLS_PER_EVENT:g} vendor calls per event",
            "value": calls,
            "met": calls is not None and calls <= TARGET_CALLS_PER_EVENT,
        },
        {
            "name": f"≤ {TARGET_CPU_MS_PER_EVENT:g} ms worker CPU per event (start-up included)",
            "value": cpu,
            "met": cpu is not None and cpu <= TARGET_CPU_MS_PER_EVENT,
        },
    ]


def render(phase: VendorPhase) -> str:
    lines = [
        f"vendor phase: {phase.events} events ({phase.incidents} incidents), {phase.replicas} replicas per worker, "
        f"vendors {phase.latency_ms[0]:g}-{phase.latency_ms[1]:g} ms, code {phase.code_root}",
        f"  load average before {phase.loadavg_before}, after {phase.loadavg_after}",
        f"  {'worker':<8} {'events/s':>9} {'drain s':>8} {'calls/event':>12} {'CPU ms/event':>13}",
    ]
    for name, f in phase.workers.items():
        lines.append(
            f"  {name:<8} {f.events_per_s!s:>9} {f.drain_s!s:>8} {f.calls_per_event:>12} {f.cpu_ms_per_event:>13}"
        )
    for target in phase.targets:
        lines.append(f"  [{'met' if target['met'] else 'NOT met'}] {target['name']}: {target['value']}")
    return "\n".join(lines)


def code_root_arg(value: str) -> Path:
    path = Path(value).resolve()
    if not (path / "services" / "workers" / "__main__.py").exists():
        raise ValueError(f"{path} holds no services/workers")
    return path


__all__ = ["VendorPhase", "code_root_arg", "render", "run_vendor_phase"]
