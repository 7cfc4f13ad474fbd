"""A 3-node nats-server cluster on loopback with JetStream, fsyncing before each ack as deployed; each node can
be killed (SIGKILL), frozen (SIGSTOP), thawed and restarted on its own ports and store directory."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import nats

from tests.support.polling import eventually, eventually_sync
from tests.support.processes import Process, free_port, nats_server_binary, port_open

CLUSTER_NAME = "incidents"
SYNC_ALWAYS = "jetstream {\n  sync_interval: always\n}\n"
"""deploy/k8s/nats/nats.conf's durability: fsync before each acknowledgement."""


@dataclass
class ClusterNode:
    name: str
    workdir: Path
    port: int
    cluster_port: int
    monitor_port: int
    routes: list[str]
    process: Process | None = None
    frozen: bool = False

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        return [
            nats_server_binary(),
            "-n", self.name,
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-js",
            "-sd", str(self.workdir / "jetstream"),
            "--cluster_name", CLUSTER_NAME,
            "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
            "--routes", ",".join(self.routes),
            "-c", str(conf),
        ]  # fmt: skip

    def start(self) -> ClusterNode:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "nats.conf").write_text(SYNC_ALWAYS)
        self.process = Process(self.name, self.argv(), None, self.workdir / "nats.log").start()
        eventually_sync(lambda: port_open(self.port), timeout=15, what=f"{self.name} to listen")
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def kill(self) -> None:
        self.thaw()
        if self.process:
            self.process.kill()

    def stop(self) -> None:
        self.thaw()
        if self.process:
            self.process.stop()

    def freeze(self) -> None:
        """SIGSTOP: the node holds its sockets and answers nothing (a VM paused, a long GC)."""
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGCONT)
        self.frozen = False


class NatsCluster:
    def __init__(self, workdir: Path, size: int = 3, ports: list[tuple[int, int, int]] | None = None) -> None:
        """`ports`: (client, cluster, monitoring) of each node; free ones by default."""
        ports = ports or [(free_port(), free_port(), free_port()) for _ in range(size)]
        routes = [f"nats://127.0.0.1:{cluster}" for _, cluster, _ in ports]
        self.nodes = [
            ClusterNode(
                f"n{index + 1}",
                workdir / f"n{index + 1}",
                port,
                cluster,
                monitor,
                [route for other, route in enumerate(routes) if other != index],
            )
            for index, (port, cluster, monitor) in enumerate(ports)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def nats_url(self) -> str:
        """NATS_URL for the services: comma-separated."""
        return ",".join(self.urls)

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        return self

    async def wait_formed(self, timeout: float = 60.0) -> None:
        """Until JetStream answers through the cluster (a meta leader is elected)."""

        async def answers() -> bool:
            nc = await nats.connect(servers=self.urls, connect_timeout=2, max_reconnect_attempts=1)
            try:
                await nc.jetstream().account_info()
                return True
            except Exception:  # no meta leader yet: JetStream answers 503 or times out
                return False
            finally:
                await nc.close()

        await eventually(answers, timeout=timeout, interval=0.5, what="the NATS cluster to elect a meta leader")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
