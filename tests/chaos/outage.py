"""One outside system down for a while (first answering 503, then refusing connections): its events wait,
retried with backoff and not dead-lettered, while the other systems keep up; afterwards everything converges."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
import nats
from nats.js import JetStreamContext
from nats.js.errors import NoKeysError

from services.workers.settings import RunnerSettings
from shared.events import STREAM
from shared.jetstream import refs_bucket
from shared.records import ErrorRecord
from tests.chaos.fakes import Vendors
from tests.chaos.gate import Gate
from tests.chaos.load import Load, LoadPlan
from tests.chaos.oracle import CHECKS, Finding, read_truth
from tests.chaos.scenario import LATEST, deadletter_count, settled, start
from tests.chaos.system import WORKERS, System, Timings
from tests.support.polling import eventually
from tests.support.stack import wait_for_empty_outbox

# The workers' own backoff (RunnerSettings defaults): what must carry events through an outage.
PRODUCTION = RunnerSettings()
OUTAGE_LATEST = LATEST.with_name("outage-latest.json")


@dataclass(frozen=True)
class OutagePlan:
    vendor: str = "jira"
    seconds: float = 70.0
    """How long the vendor is down: the first half answering 503, the second refusing connections."""
    incidents: int = 20
    actions: int = 100
    settle_timeout: float = 240.0
    seed: int = 1


@dataclass
class OutageReport:
    vendor: str
    seconds: float
    others_caught_up_after: float = -1.0
    """Seconds into the outage when the other systems matched the database."""
    answered_503: int = 0
    refused_phase: bool = False
    waiting_seen: int = 0
    """Most events of the down vendor seen waiting in its consumer (unacknowledged or not yet delivered)."""
    redelivered_seen: int = 0
    max_deliveries: int = 0
    """Highest delivery count of a failed event at the end of the outage (the backoff at work)."""
    deadletters: int = 0
    recovered_after: float = -1.0
    """Seconds after the outage ended until every consumer had settled."""
    duplicates: int = 0
    lost: int = 0
    converged: float = 0.0
    problems: list[str] = field(default_factory=list)
    logs: str = ""

    def line(self) -> str:
        return (
            f"outage={self.vendor} seconds={self.seconds:.0f} answered_503={self.answered_503} "
            f"max_deliveries={self.max_deliveries} deadletters={self.deadletters} "
            f"recovered_after={self.recovered_after:.0f}s duplicates={self.duplicates} lost={self.lost} "
            f"converged={self.converged:.1f}%"
        )

    def write(self, path: Path = OUTAGE_LATEST) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"summary": self.line(), **asdict(self)}, indent=2) + "\n")


async def findings(vendors: Vendors, database_url: str, names: tuple[str, ...]) -> list[Finding]:
    truth, _ = await read_truth(database_url)
    return [CHECKS[name](vendors, t) for t in truth.values() for name in names]


async def max_deliveries(js: JetStreamContext, worker: str) -> int:
    kv = await js.key_value(refs_bucket(worker))
    try:
        keys = [k for k in await kv.keys() if k.startswith("error.")]
    except NoKeysError:
        return 0
    most = 0
    for key in keys:
        entry = await kv.get(key)
        if entry.value:
            most = max(most, msgspec.json.decode(entry.value, type=ErrorRecord).deliveries)
    return most


async def retries_recorded(js: JetStreamContext, worker: str, timeout: float = 20.0) -> int:
    """The most attempts an error record shows; polled, since a KV key listing under load can come back empty."""

    async def recorded() -> int:
        return await max_deliveries(js, worker)

    try:
        return await eventually(recorded, timeout=timeout, interval=0.5, what=f"{worker}'s error records")
    except AssertionError:
        return 0  # the report says so, and the test's assertion explains it


async def run_outage(plan: OutagePlan, workdir: Path, database_url: str) -> OutageReport:
    report = OutageReport(plan.vendor, plan.seconds, logs=str(workdir / "logs"))
    timings = Timings(retry_base=PRODUCTION.retry_base, retry_max=PRODUCTION.retry_max)
    vendors = Vendors.start(plan.seed, timeout=timings.http_timeout, search_lag=timings.fake_search_lag)
    down = vendors.all()[plan.vendor]
    gate = Gate(down.port)
    await gate.open()
    vendors.urls[plan.vendor] = gate.url
    system = System(workdir, database_url, vendors, timings)
    try:
        await start(system)
        nc = await nats.connect(system.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        try:
            await _outage(plan, report, system, vendors, gate, nc.jetstream())
            await _recovery(plan, report, system, vendors, nc.jetstream())
        finally:
            await nc.close()
    finally:
        system.stop()
        await gate.close()
        vendors.stop()
    return report


async def _outage(
    plan: OutagePlan, report: OutageReport, system: System, vendors: Vendors, gate: Gate, js: JetStreamContext
) -> None:
    others = tuple(w for w in WORKERS if w != plan.vendor)
    down = vendors.all()[plan.vendor]
    began = time.monotonic()
    halfway, end = began + plan.seconds / 2, began + plan.seconds
    down.plan.down = True
    await Load(system.api_url, LoadPlan(incidents=plan.incidents, actions=plan.actions, clients=4, rate=10.0)).run()

    async def others_caught_up() -> bool:
        found = await findings(vendors, system.database_url, others)
        assert all(f.converged for f in found), [p for f in found for p in f.problems][:5]
        return True

    await eventually(
        others_caught_up,
        timeout=max(halfway - time.monotonic(), 1.0),
        interval=0.5,
        what=f"the other systems to catch up while {plan.vendor} answers 503",
    )
    report.others_caught_up_after = round(time.monotonic() - began, 1)

    async def watch(until: float) -> None:
        while time.monotonic() < until:
            info = await js.consumer_info(STREAM, plan.vendor)
            report.waiting_seen = max(report.waiting_seen, info.num_ack_pending + info.num_pending)
            report.redelivered_seen = max(report.redelivered_seen, info.num_redelivered)
            assert await deadletter_count(js) == 0, "an event was dead-lettered during the outage"
            await asyncio.sleep(max(0.0, min(2.0, until - time.monotonic())))  # the outage's schedule

    await watch(halfway)
    down.plan.down = False
    report.answered_503 = down.plan.injected["down"]
    await gate.close()  # now the host refuses connections
    report.refused_phase = True
    await watch(end)
    report.max_deliveries = await retries_recorded(js, plan.vendor)
    await gate.open()


async def _recovery(
    plan: OutagePlan, report: OutageReport, system: System, vendors: Vendors, js: JetStreamContext
) -> None:
    began = time.monotonic()
    await wait_for_empty_outbox(system.database_url, timeout=30)
    await settled(js, timeout=plan.settle_timeout)
    report.recovered_after = round(time.monotonic() - began, 1)
    report.deadletters = await deadletter_count(js)

    async def idle() -> bool:
        return vendors.idle()

    await eventually(idle, timeout=30, what="no request in flight at the fakes")
    found = await findings(vendors, system.database_url, WORKERS)
    report.duplicates = sum(f.duplicates for f in found)
    report.lost = sum(f.lost for f in found)
    report.converged = 100.0 * sum(f.converged for f in found) / max(len(found), 1)
    report.problems = [f"{f.vendor} incident {f.incident}: {p}" for f in found for p in f.problems]
