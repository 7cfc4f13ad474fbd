"""What durability and tracing cost, as ratios measured in the same run, interleaved (A B, B A, A B, ...) so
that a neighbour's load on a shared machine falls on both sides alike.

- durability: JetStream with `sync_interval: always` (fsync before each ack: what deploy/k8s/nats/nats.conf
  and `just cluster` run) against the default (fsync every 2 minutes), each on its own nats-server: one
  synchronous publisher (`js.publish` awaited one by one), and the event handler's own store path
  (`BatchPublisher`, requests of 100 events of 100 incidents, as the relay sends them).
- tracing: two API processes, each on its own database, one exporting spans over OTLP/HTTP to a local
  receiver and one with tracing off, under the same wrk load.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import structlog
from nats.js.api import StorageType, StreamConfig

from scripts.bench.baseline_nats import created_event
from scripts.bench.children import Children
from scripts.bench.options import Options
from scripts.bench.procstats import CpuWindow
from scripts.bench.system import SYNC_ALWAYS, Infra, migrate, wait_http_ok
from scripts.bench.wrk import Wrk
from services.eventhandler.metrics import Metrics
from services.eventhandler.pipeline import JetStreamPublisher
from services.eventhandler.publishing import BatchPublisher
from shared.events import STREAM
from tests.support.otlp import OtlpReceiver
from tests.support.processes import NatsServer, Process, free_port
from tests.support.services import service_env
from tests.support.stack import wait_for_empty_outbox

BATCH = 100


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


@dataclass
class Interleaved:
    """One measure taken for `base` and `variant` in alternating order; the ratio is variant / base."""

    unit: str
    base: list[float] = field(default_factory=list)
    variant: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        base, variant = statistics.median(self.base), statistics.median(self.variant)
        return {
            "unit": self.unit,
            "base_rounds": [round(v, 1) for v in self.base],
            "variant_rounds": [round(v, 1) for v in self.variant],
            "base_median": round(base, 1),
            "variant_median": round(variant, 1),
            "ratio": round(variant / base, 3) if base else None,
        }


async def _rounds(
    rounds: int, base: Callable[[], Awaitable[float]], variant: Callable[[], Awaitable[float]], unit: str
) -> Interleaved:
    found = Interleaved(unit)
    for index in range(rounds):
        order = ((found.base, base), (found.variant, variant))
        for results, measure in order if index % 2 == 0 else reversed(order):
            results.append(await measure())
    return found


def _events(count: int) -> list[bytes]:
    """`count` incident.created events of distinct incidents, new ids each call (no deduplication)."""
    return [created_event(uuid.uuid4().int % 10**9 + 1, "bench durability") for _ in range(count)]


class JetStreamTarget:
    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.nc: nats.NATS | None = None

    async def open(self) -> JetStreamTarget:
        self.nc = await nats.connect(self.server.url)
        js = self.nc.jetstream()
        await js.add_stream(
            StreamConfig(name=STREAM, subjects=["incident.>"], storage=StorageType.FILE, duplicate_window=300)
        )
        self.publisher = JetStreamPublisher(self.nc)
        await self.publisher.start()
        self.batches = BatchPublisher(self.publisher, Metrics())
        return self

    async def close(self) -> None:
        await self.publisher.stop()
        if self.nc is not None:
            await self.nc.close()

    async def sequential(self, seconds: float) -> float:
        assert self.nc is not None
        js = self.nc.jetstream()
        payload = _events(1)[0]
        count, deadline, started = 0, time.monotonic() + seconds, time.monotonic()
        while time.monotonic() < deadline:
            await js.publish("incident.created", payload, headers={"Nats-Msg-Id": uuid.uuid4().hex})
            count += 1
        return count / (time.monotonic() - started)

    async def event_handler(self, seconds: float) -> float:
        stored, deadline, started = 0, time.monotonic() + seconds, time.monotonic()
        while time.monotonic() < deadline:
            reply = await self.batches.publish(_events(BATCH))
            stored += len(reply.stored)
        return stored / (time.monotonic() - started)


async def durability_cost(workdir: Path, children: Children, rounds: int, seconds: float) -> dict[str, object]:
    servers = []
    for name, config in (("nats-default-sync", None), ("nats-sync-always", SYNC_ALWAYS)):
        servers.append(children.start(NatsServer(workdir / name, config=config)))
    default, always = [await JetStreamTarget(s).open() for s in servers]
    try:
        say(f"durability: sync_interval always vs default, {rounds} interleaved rounds of {seconds:g}s")
        sequential = await _rounds(
            rounds, lambda: default.sequential(seconds), lambda: always.sequential(seconds), "msg/s"
        )
        batched = await _rounds(
            rounds, lambda: default.event_handler(seconds), lambda: always.event_handler(seconds), "events/s"
        )
    finally:
        for target in (default, always):
            await target.close()
        for server in servers:
            server.stop()
            if server.process is not None:
                children.forget(server.process)
    found: dict[str, object] = {
        "method": "variant = sync_interval: always (fsync before each ack), base = default (fsync every 2 min); "
        "each on its own nats-server, same machine, interleaved rounds",
        "one_synchronous_publisher": sequential.as_dict(),
        "event_handler_store_path": batched.as_dict(),
    }
    say(
        f"  one publisher {sequential.as_dict()['ratio']}x, event handler path {batched.as_dict()['ratio']}x "
        "(always / default)"
    )
    return found


async def _api(
    name: str, infra: Infra, workdir: Path, children: Children, extra: dict[str, str]
) -> tuple[Process, str, str]:
    database = f"incidents_{name}"
    infra.mariadb.sql(f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;")
    database_url = f"{infra.mariadb.admin_url}/{database}"
    await asyncio.to_thread(migrate, database_url)
    port = free_port()
    env = service_env(
        DATABASE_URL=database_url, NATS_URL=infra.nats.url, API_HOST="127.0.0.1", API_PORT=str(port), **extra
    )
    process = children.add(
        Process(f"api-{name}", [sys.executable, "-m", "services.api"], env, workdir / "logs" / f"api-{name}.log")
    ).start()
    url = f"http://127.0.0.1:{port}"
    await wait_http_ok(f"{url}/health/ready", process)
    return process, url, database_url


async def tracing_cost(
    infra: Infra, options: Options, workdir: Path, children: Children, rounds: int, seconds: float
) -> dict[str, object]:
    receiver = OtlpReceiver().start()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
    eh_port = free_port()
    eventhandler = children.add(
        Process(
            "eventhandler-tracing",
            [sys.executable, "-m", "services.eventhandler"],
            service_env(NATS_URL=infra.nats.url, HEALTH_PORT=str(eh_port), **otel),
            workdir / "logs" / "eventhandler-tracing.log",
        )
    ).start()
    started: list[Process] = [eventhandler]
    try:
        await wait_http_ok(f"http://127.0.0.1:{eh_port}/health/ready", eventhandler)
        plain = await _api("untraced", infra, workdir, children, {})
        started.append(plain[0])
        traced = await _api("traced", infra, workdir, children, otel)
        started.append(traced[0])
        cpu: dict[str, list[float]] = {"untraced": [], "traced": []}
        wrk = Wrk(options, workdir, children)

        def measure(label: str, api: tuple[Process, str, str]) -> Callable[[], Awaitable[float]]:
            async def run() -> float:
                window = CpuWindow({label: api[0].pid}).start()
                result = await wrk.load(
                    f"{api[1]}/incident/",
                    body='{"message": "bench tracing"}',
                    label=f"tracing-{label}",
                    seconds=seconds,
                )
                used = window.stop(extra_s=result.wrk_cpu_s)
                cpu[label].append(1000 * used.get(label, 0.0) / (result.requests or 1))
                await wait_for_empty_outbox(api[2], timeout=options.catchup_timeout)
                return result.rps

            return run

        say(f"tracing: API with spans exported over OTLP vs off, {rounds} interleaved rounds of {seconds:g}s")
        for label, api in (("untraced", plain), ("traced", traced)):  # unmeasured warm-up of each
            await wrk.load(
                f"{api[1]}/incident/", body='{"message": "bench warmup"}', label=f"tracing-warmup-{label}", seconds=1
            )
        rate = await _rounds(rounds, measure("untraced", plain), measure("traced", traced), "req/s")
    finally:
        for process in reversed(started):
            process.stop(timeout=25)
            children.forget(process)
        receiver.stop()
    cpu_pair = Interleaved("API CPU ms/request", cpu["untraced"], cpu["traced"])
    found: dict[str, object] = {
        "method": "variant = OTEL_EXPORTER_OTLP_ENDPOINT set (the API's request and relay spans exported over "
        "OTLP/HTTP protobuf to a local receiver), base = unset; two API processes on their own databases, one "
        "event handler (traced) for both, wrk POST /incident/, interleaved rounds",
        "api_create_rate": rate.as_dict(),
        "api_cpu_per_request": cpu_pair.as_dict(),
        "spans_received": len(receiver.all()),
    }
    say(f"  create rate {rate.as_dict()['ratio']}x, API CPU per request {cpu_pair.as_dict()['ratio']}x (on / off)")
    return found


async def run_costs_phase(infra: Infra, options: Options, workdir: Path, children: Children) -> dict[str, object]:
    # The event handler's store path runs in this process: keep its per-event log lines out of the output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rounds = 2 if options.quick else 4
    seconds = 1.0 if options.quick else min(options.duration, 5.0)
    return {
        "durability": await durability_cost(workdir, children, rounds, seconds),
        "tracing": await tracing_cost(infra, options, workdir, children, rounds, seconds),
        "rounds": rounds,
        "seconds_each": seconds,
    }
