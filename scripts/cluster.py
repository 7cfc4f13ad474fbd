"""`just cluster`: the system as in production, on one machine: three nats-server nodes on loopback (a JetStream
cluster fsyncing before each ack), R3 streams and buckets, two API replicas, the event handler and two replicas
of each worker (dry run unless their credentials are set). Ctrl-C stops all of it cleanly.

    nats-server n1, n2, n3   nats://127.0.0.1:4222,4223,4224 (monitoring on 8222-8224), data in var/cluster/
    API replicas             http://127.0.0.1:8000 and :8001 (the same database)
    event handler            health and metrics on :8081
    workers                  jira-1, jira-2, slack-1, ... : health and metrics on :8091 and up

DATABASE_URL defaults to SQLite (var/cluster.db); point it at MariaDB to run it as deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python scripts/cluster.py` puts scripts/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from scripts.dev import COLOURS, Child, migrated, until_stopped  # noqa: E402
from tests.support.cluster import NatsCluster  # noqa: E402

VAR = ROOT / "var"
WORKERS = ("jira", "slack", "zendesk")
NODES = [(4222, 6222, 8222), (4223, 6223, 8223), (4224, 6224, 8224)]
API_PORTS = (8000, 8001)
REPLICAS = 2


def services(env: dict[str, str]) -> list[Child]:
    python = sys.executable
    children = [
        Child(
            "eventhandler",
            [python, "-m", "services.eventhandler"],
            env | {"STREAM_REPLICAS": "3", "HEALTH_PORT": "8081"},
            COLOURS[2],
        )
    ]
    for index, port in enumerate(API_PORTS):
        children.append(
            Child(f"api-{index + 1}", [python, "-m", "services.api"], env | {"API_PORT": str(port)}, COLOURS[1])
        )
    health = 8091
    for n, worker in enumerate(WORKERS):
        for replica in range(1, REPLICAS + 1):
            children.append(
                Child(
                    f"{worker}-{replica}",
                    [python, "-m", "services.workers", worker],
                    env | {"HEALTH_PORT": str(health)},
                    COLOURS[(3 + n) % len(COLOURS)],
                )
            )
            health += 1
    return children


async def ready(url: str, child: Child, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() < deadline and child.proc is not None and child.proc.returncode is None:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return True
            await asyncio.sleep(0.2)  # polling, with the deadline above
    print(f"cluster: {child.name} did not become ready", file=sys.stderr)
    return False


async def main() -> int:
    cluster = NatsCluster(VAR / "cluster", ports=NODES)
    env = dict(os.environ)
    env.update(NATS_URL=cluster.nats_url, PYTHONUNBUFFERED="1")
    env.setdefault("DATABASE_URL", "sqlite+aiosqlite:///./var/cluster.db")
    env.setdefault("LOG_FORMAT", "console")
    VAR.mkdir(exist_ok=True)
    print(f"cluster: starting nats-server n1, n2, n3 on {cluster.nats_url}", flush=True)
    await asyncio.to_thread(cluster.start)
    try:
        await cluster.wait_formed()
        if not await migrated(env):
            return 1
        eventhandler, *rest = services(env)
        await eventhandler.start()
        # Ready once it made the R3 streams, consumers and buckets: a worker alone would make its bucket R1.
        if not await ready("http://127.0.0.1:8081/health/ready", eventhandler):
            await eventhandler.stop()
            return 1
        for child in rest:
            await child.start()
        children = [eventhandler, *rest]
        print(
            "cluster: API on http://127.0.0.1:8000 and :8001 (console at /ui/), "
            f"NATS_URL={cluster.nats_url} — Ctrl-C stops everything",
            flush=True,
        )
        status = await until_stopped(children, "cluster")
        await asyncio.gather(*(c.stop() for c in children))
        return status
    finally:
        await asyncio.to_thread(cluster.stop)
        print("cluster: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
