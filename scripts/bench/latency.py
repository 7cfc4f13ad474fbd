"""Where an event's time goes at a fixed create rate: `python -m scripts.bench.latency --rate 416`.

The bench's system (MariaDB, nats-server as deployed, API, event handler, three dry-run workers), creates
at a fixed rate in open loop for several rounds, and per round each leg of an event's way, in ms:
commit → stored (CloudEvent time → JetStream's timestamp: relay, request, the stream's queue), stored →
confirmed (JetStream's timestamp → the event handler's `event stored` line: the fsync and the ack), and
commit → worker ack per worker. `--sync-interval default` runs nats-server without `sync_interval: always`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import msgspec
import nats.js.errors

from scripts.bench import meta
from scripts.bench.catchup import Probe
from scripts.bench.children import Children
from scripts.bench.delivery import measure, read_stream
from scripts.bench.ehmetrics import publish_counts
from scripts.bench.openloop import run_open_loop
from scripts.bench.procstats import CpuWindow
from scripts.bench.stats import percentiles_ms
from scripts.bench.system import DATABASE, SYNC_ALWAYS, WORKERS, Infra, start_services, stop_services
from shared.logwriter import FLUSH_SECONDS
from tests.support.cluster import NatsCluster
from tests.support.mariadb import MariaDB
from tests.support.processes import NatsServer

T = TypeVar("T")


class _Line(msgspec.Struct):
    event: str = ""
    event_id: str | None = None
    timestamp: str | None = None


def confirmed_at(path: Path) -> dict[str, float]:
    """event_id → when the event handler logged `event stored` (JetStream's ack received)."""
    decoder = msgspec.json.Decoder(_Line)
    found: dict[str, float] = {}
    with path.open("rb") as f:
        for raw in f:
            if b'"event stored"' not in raw:
                continue
            try:
                line = decoder.decode(raw)
            except msgspec.DecodeError:
                continue
            if line.event_id and line.timestamp:
                found.setdefault(line.event_id, datetime.fromisoformat(line.timestamp).timestamp())
    return found


async def _retrying(make: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """A read of the stream on R3 may meet its new consumer before it has a leader (503): try again."""
    for _ in range(attempts - 1):
        try:
            return await make()
        except nats.js.errors.ServiceUnavailableError:
            await asyncio.sleep(1.0)
    return await make()


def start_infra(workdir: Path, children: Children, sync_always: bool) -> Infra:
    mariadb = MariaDB(workdir / "mariadb")
    try:
        mariadb.start()
    finally:
        if mariadb.process is not None:
            children.add(mariadb.process)
    nats = NatsServer(workdir / "nats", config=SYNC_ALWAYS if sync_always else None)
    try:
        nats.start()
    finally:
        if nats.process is not None:
            children.add(nats.process)
    return Infra(mariadb, nats)


@dataclass
class _ClusterUrl:
    url: str


@dataclass
class ClusterInfra:
    """MariaDB and a 3-node nats-server cluster (as deployed: R3 streams, fsync before each ack)."""

    mariadb: MariaDB
    cluster: NatsCluster

    @property
    def nats(self) -> _ClusterUrl:
        return _ClusterUrl(self.cluster.nats_url)

    @property
    def pids(self) -> dict[str, int]:
        assert self.mariadb.process is not None
        found = {"mariadbd": self.mariadb.process.pid}
        found.update({f"nats-{n.name}": n.process.pid for n in self.cluster.nodes if n.process is not None})
        return found


async def start_cluster_infra(workdir: Path, children: Children) -> ClusterInfra:
    mariadb = MariaDB(workdir / "mariadb")
    try:
        mariadb.start()
    finally:
        if mariadb.process is not None:
            children.add(mariadb.process)
    cluster = NatsCluster(workdir / "cluster")
    try:
        cluster.start()
    finally:
        for node in cluster.nodes:
            if node.process is not None:
                children.add(node.process)
    await cluster.wait_formed()
    return ClusterInfra(mariadb, cluster)


async def run(args: argparse.Namespace, workdir: Path, children: Children) -> dict[str, Any]:
    env = dict(item.split("=", 1) for item in args.env)
    infra: Infra | ClusterInfra
    if args.replicas == 3:
        infra = await start_cluster_infra(workdir, children)
        env["STREAM_REPLICAS"] = "3"
        probe_url = infra.cluster.urls[0]
    else:
        infra = await asyncio.to_thread(start_infra, workdir, children, args.sync_interval == "always")
        probe_url = infra.nats.url
    services = await start_services(infra, workdir, children, extra_env=env)  # type: ignore[arg-type]
    pids = {**services.pids, **infra.pids}
    metrics_url = services.health_urls["eventhandler"].replace("/health/ready", "/metrics")
    parsed = urlparse(services.api_url)
    assert parsed.hostname is not None and parsed.port is not None
    probe = await Probe(infra.mariadb, DATABASE, probe_url, WORKERS).open()
    rounds: list[dict[str, Any]] = []
    try:
        body = json.dumps({"message": "latency warm-up"}).encode()
        warm = await run_open_loop(
            parsed.hostname, parsed.port, "/incident/", body, rate=args.rate, duration=3, connections=32
        )
        await probe.wait_drained(warm.ended_at, 60)
        for number in range(args.rounds):
            message = f"latency round {number}"
            before = await publish_counts(metrics_url)
            window = CpuWindow(pids).start()
            body = json.dumps({"message": message}).encode()
            load = await run_open_loop(
                parsed.hostname, parsed.port, "/incident/", body, rate=args.rate, duration=args.duration, connections=32
            )
            cpu = window.stop()
            await probe.wait_drained(load.ended_at, 60)
            after = await publish_counts(metrics_url)
            await asyncio.sleep(FLUSH_SECONDS + 0.1)  # the event handler's last lines reach its file
            delivery = (await _retrying(partial(measure, probe.js, services.log_paths, {message: message})))[message]
            stored = {
                k: v for k, v in (await _retrying(partial(read_stream, probe.js))).items() if v.message == message
            }
            confirmed = await asyncio.to_thread(confirmed_at, services.eventhandler.log_path)
            legs = [confirmed[k] - v.stored for k, v in stored.items() if k in confirmed]
            leg = percentiles_ms(legs, (50, 99, 100))
            rounds.append(
                {
                    "http_p99_ms": load.p99_ms,
                    "achieved_rate": load.achieved_rate,
                    "commit_to_stored": delivery.to_stream,
                    "stored_to_confirmed": {"p50_ms": leg[50], "p99_ms": leg[99], "max_ms": leg[100]},
                    "workers_p99_ms": {w: d.p99_ms for w, d in delivery.workers.items()},
                    "from_stream_p99_ms": {w: d.from_stream_p99_ms for w, d in delivery.workers.items()},
                    "worst_p99_ms": max((d.p99_ms or 0.0) for d in delivery.workers.values()),
                    "relay": after.minus(before),
                    "cpu_s": cpu,
                }
            )
            print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    finally:
        await probe.close()
        await asyncio.to_thread(stop_services, services, children)
    return {
        "loadavg_at_start": args.loadavg,
        "loadavg_at_end": meta.loadavg(),
        "rate": args.rate,
        "sync_interval": args.sync_interval,
        "replicas": args.replicas,
        "env": env,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.latency", description=__doc__)
    parser.add_argument("--rate", type=float, default=416.0, help="creates per second (open loop)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sync-interval", choices=("always", "default"), default="always")
    parser.add_argument("--replicas", type=int, choices=(1, 3), default=1, help="3: a 3-node cluster, R3 streams")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env for the services")
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    args.loadavg = meta.loadavg()
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="incidents-latency-"))
    try:
        result = asyncio.run(run(args, workdir, children))
    finally:
        children.stop_all()
        if args.keep_workdir:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
