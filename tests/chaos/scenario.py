"""The convergence scenario, shared by the CI test and the soak script: start everything, drive load under
chaos, stop the chaos, wait for the pipeline to drain, and compare every outside system with the database."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared.events import STREAM
from shared.jetstream import DEADLETTER_STREAM
from tests.chaos.fakes import Vendors
from tests.chaos.load import OUTSIDE_ACTIONS, Load, LoadPlan, LoadStats
from tests.chaos.monkey import ChaosPlan, ChaosStats, Monkey
from tests.chaos.natschaos import NatsChaos, NatsChaosPlan, NatsChaosStats
from tests.chaos.oracle import compare, read_truth, stray_objects, unacknowledged_losses
from tests.chaos.storm import AlertStorm, StormPlan, StormStats
from tests.chaos.storm import check as check_storm
from tests.chaos.system import WORKERS, Exited, MariaDBService, System, Timings
from tests.support.mariadb import MariaDB
from tests.support.polling import eventually
from tests.support.processes import ROOT
from tests.support.stack import assert_stream_matches_event_log, wait_for_empty_outbox

LATEST = ROOT / "var" / "chaos" / "latest.json"


@dataclass(frozen=True)
class Scenario:
    load: LoadPlan = field(default_factory=LoadPlan)
    chaos: ChaosPlan = field(default_factory=ChaosPlan)
    timings: Timings = field(default_factory=Timings)
    fault_rate: float = 0.05
    """Share of outside requests that get a fault while the chaos runs."""
    late_faults: bool = True
    """Also answer some requests after the workers' HTTP timeout (the change still lands)."""
    latency: tuple[float, float] = (0.0, 0.08)
    """Seconds each vendor answer takes (uniform), as a vendor across the internet."""
    settle_timeout: float = 240.0
    """After the load ends (a frozen replica may still be thawing): how long the outbox and the consumers may
    take to drain."""
    storm: StormPlan | None = None
    """An alert storm (Alertmanager and Events v2, mostly repeats) alongside the action mix."""
    cluster_size: int = 0
    """0: one nats-server. 3: a loopback cluster with R3 streams and buckets, and `nats_chaos` in it."""
    api_replicas: int = 1
    nats_chaos: NatsChaosPlan = field(default_factory=NatsChaosPlan)
    service_chaos: bool = True
    """SIGKILL random services and freeze a worker replica (the Monkey); off to test the NATS cluster alone."""


@dataclass
class Summary:
    actions: int = 0
    ok: int = 0
    kills: int = 0
    pauses: list[float] = field(default_factory=list)
    """Seconds each worker replica stayed frozen (SIGSTOP)."""
    events: int = 0
    duplicates: int = 0
    lost: int = 0
    converged: float = 0.0
    incidents: int = 0
    deleted: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    slow_starts: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    outside: dict[str, int] = field(default_factory=dict)
    """Signed Slack clicks and Jira and Zendesk webhooks in the load, by outcome."""
    faults: dict[str, dict[str, int]] = field(default_factory=dict)
    by_vendor: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    diverged: dict[str, Any] = field(default_factory=dict)
    """For each diverged incident and system: the database's truth and what the outside shows."""
    strays: list[str] = field(default_factory=list)
    deadletters: int = 0
    stream_error: str | None = None
    settle_error: str | None = None
    storm: dict[str, Any] = field(default_factory=dict)
    storm_error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)
    seed: int = 0
    logs: str = ""
    nats: NatsChaosStats | None = None
    """The NATS cluster's chaos, when the scenario runs on one."""

    def line(self) -> str:
        server_errors = sum(n for outcome, n in self.outcomes.items() if outcome.startswith("http-5"))
        cluster = (
            f" nats: leader_kills={self.nats.leader_kills} freezes={self.nats.freezes} restarts={self.nats.restarts}"
            if self.nats
            else ""
        )
        return (
            f"actions={self.actions} ok={self.ok} kills={self.kills} pauses={self.pauses} events={self.events} "
            f"duplicates={self.duplicates} lost={self.lost} converged={self.converged:.1f}% "
            f"5xx={server_errors}{cluster}"
        )

    def write(self, path: Path = LATEST) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body: dict[str, Any] = {"summary": self.line(), **asdict(self)}
        path.write_text(json.dumps(body, indent=2) + "\n")

    def explain(self) -> str:
        parts = [self.line()]
        for label, value in (("stream", self.stream_error), ("settle", self.settle_error), ("storm", self.storm_error)):
            if value:
                parts.append(f"{label}: {value}")
        if self.deadletters:
            parts.append(f"dead letters: {self.deadletters}")
        parts += self.problems[:40]
        if self.exits:
            parts.append(f"exited without a kill: {self.exits}")
        parts.append(f"logs: {self.logs}")
        return "\n".join(parts)


async def settled(js: JetStreamContext, timeout: float) -> None:
    """Every worker consumer has delivered everything and holds no unacknowledged message."""

    async def probe() -> bool:
        for worker in WORKERS:
            info = await js.consumer_info(STREAM, worker)
            assert (info.num_pending, info.num_ack_pending) == (0, 0), (worker, info.num_pending, info.num_ack_pending)
        return True

    await eventually(probe, timeout=timeout, interval=0.5, what="every worker consumer to settle")


async def deadletter_count(js: JetStreamContext) -> int:
    try:
        return int((await js.stream_info(DEADLETTER_STREAM)).state.messages)
    except NotFoundError:
        return 0


async def run(scenario: Scenario, workdir: Path, database_url: str, mariadb: MariaDB | None = None) -> Summary:
    """The scenario; with `mariadb` (the server of `database_url`), the database is among the victims."""
    summary = Summary(seed=scenario.load.seed, logs=str(workdir / "logs"))
    started = time.monotonic()
    vendors = Vendors.start(
        scenario.load.seed, timeout=scenario.timings.http_timeout, search_lag=scenario.timings.fake_search_lag
    )
    vendors.set_latency(*scenario.latency)
    system = System(
        workdir,
        database_url,
        vendors,
        scenario.timings,
        cluster_size=scenario.cluster_size,
        api_replicas=scenario.api_replicas,
    )
    system.mariadb = MariaDBService(mariadb) if mariadb is not None else None
    try:
        await start(system)
        summary.seconds["start"] = round(time.monotonic() - started, 1)
        load_ended, load = await _chaos(scenario, system, vendors, summary)
        await _converge(scenario, system, vendors, summary, load_ended, load)
    finally:
        system.stop()
        vendors.stop()
        summary.seconds["total"] = round(time.monotonic() - started, 1)
    return summary


async def start(system: System) -> None:
    try:
        await system.start()
    except (Exited, AssertionError) as exc:
        raise AssertionError(f"the system did not start: {exc}\n{system.log_tails()}") from exc


async def _chaos(scenario: Scenario, system: System, vendors: Vendors, summary: Summary) -> tuple[float, LoadStats]:
    """Load under chaos; returns when the load ended (monotonic) and what the API acknowledged."""
    began = time.monotonic()
    vendors.set_faults(scenario.fault_rate, late=scenario.late_faults)
    stop = asyncio.Event()
    monkey = Monkey(system, scenario.chaos)
    chaos = asyncio.create_task(monkey.run(stop) if scenario.service_chaos else _no_chaos())
    cluster_chaos = None
    if system.cluster is not None:
        cluster_chaos = asyncio.create_task(NatsChaos(system.cluster, scenario.nats_chaos).run(stop))
    storm = asyncio.create_task(_storm(scenario.storm, system.api_url, stop))
    try:
        load = await Load(system.api_urls, scenario.load).run()
    finally:
        load_ended = time.monotonic()
        summary.seconds["load"] = round(load_ended - began, 1)
        stop.set()
        stats = await chaos
        storm_stats = await storm
        if cluster_chaos is not None:
            summary.nats = await cluster_chaos
        vendors.set_faults(0.0)
    if storm_stats is not None:
        summary.storm = storm_stats.as_dict()
    summary.actions, summary.ok = load.attempted, load.ok
    summary.outcomes = dict(load.outcomes)
    summary.outside = {k: v for k, v in load.by_action.items() if k.split(":")[0] in OUTSIDE_ACTIONS}
    summary.kills = stats.total_kills
    summary.pauses = stats.pauses
    summary.exits = dict(stats.exits)
    summary.slow_starts = stats.slow_starts
    summary.timeline = sorted(stats.timeline + (summary.nats.timeline if summary.nats else []))
    summary.faults = {name: dict(fake.plan.injected) for name, fake in vendors.all().items()}
    summary.seconds["chaos"] = round(time.monotonic() - began, 1)
    return load_ended, load


async def _no_chaos() -> ChaosStats:
    return ChaosStats()


async def _storm(plan: StormPlan | None, api_url: str, stop: asyncio.Event) -> StormStats | None:
    if plan is None:
        return None
    return await AlertStorm(api_url, plan).run(stop)


async def _converge(
    scenario: Scenario, system: System, vendors: Vendors, summary: Summary, load_ended: float, load: LoadStats
) -> None:
    began = time.monotonic()
    await eventually(system.all_ready, timeout=120, interval=0.5, what="every service to be ready after the chaos")
    nc = await nats.connect(servers=system.nats_servers, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        js = nc.jetstream()
        try:
            remaining = scenario.settle_timeout - (time.monotonic() - load_ended)
            await wait_for_empty_outbox(system.database_url, timeout=max(remaining, 5.0))
            remaining = scenario.settle_timeout - (time.monotonic() - load_ended)
            await settled(js, timeout=max(remaining, 5.0))
        except AssertionError as exc:
            summary.settle_error = str(exc)
        summary.seconds["settle"] = round(time.monotonic() - began, 1)
        summary.seconds["load_end_to_settled"] = round(time.monotonic() - load_ended, 1)
        try:
            await assert_stream_matches_event_log(js, system.database_url)
        except AssertionError as exc:
            summary.stream_error = str(exc)
        summary.deadletters = await deadletter_count(js)
    finally:
        await nc.close()

    async def idle() -> bool:
        return vendors.idle()

    await eventually(idle, timeout=30, what="no request in flight at the fakes")
    if scenario.storm is not None:
        accepted = StormStats(counted=int(summary.storm["counted"]), unknown=int(summary.storm["unknown"]))
        summary.storm_error = await check_storm(system.database_url, accepted)
    truth, summary.events = await read_truth(system.database_url)
    findings = compare(vendors, truth)
    summary.incidents = len(truth)
    summary.deleted = sum(1 for t in truth.values() if t.deleted)
    summary.duplicates = sum(f.duplicates for f in findings)
    summary.lost = sum(f.lost for f in findings)
    summary.converged = 100.0 * sum(f.converged for f in findings) / max(len(findings), 1)
    vendor_stats: dict[str, Counter[str]] = {}
    for finding in findings:
        counts = vendor_stats.setdefault(finding.vendor, Counter())
        counts["duplicates"] += finding.duplicates
        counts["lost"] += finding.lost
        counts["diverged"] += not finding.converged
    summary.by_vendor = {k: dict(v) for k, v in vendor_stats.items()}
    summary.problems = [f"{f.vendor} incident {f.incident}: {p}" for f in findings for p in f.problems]
    summary.diverged = {
        f"{f.vendor} {f.incident}": {"truth": asdict(truth[f.incident]), "outside": f.outside}
        for f in findings
        if not f.converged
    }
    # What the API acknowledged is still there (a database killed mid-load loses no committed write).
    missing = unacknowledged_losses(load.created, load.comments, truth)
    summary.lost += len(missing)
    summary.problems += missing
    summary.strays = stray_objects(vendors, truth)
    summary.duplicates += len(summary.strays)
