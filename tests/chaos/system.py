"""The whole system as separate processes that can be SIGKILLed and started again on the same ports."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from tests.chaos import storm
from tests.chaos.fakes import Vendors
from tests.support.cluster import NatsCluster
from tests.support.mariadb import MariaDB
from tests.support.polling import eventually
from tests.support.processes import NatsServer, Process, answers_ok, free_port, port_open
from tests.support.services import service_env
from tests.support.twoway import two_way_env

WORKERS = ("jira", "slack", "zendesk")
READY_TIMEOUT = 120.0
ServerT = TypeVar("ServerT", NatsServer, MariaDB)


@dataclass(frozen=True)
class Timings:
    """The services' knobs for a run: short enough that a test converges in minutes."""

    http_timeout: float = 3.0
    """WORKER_HTTP_TIMEOUT_SECONDS; the fakes' slow answers are shorter, their late ones longer."""
    create_grace: float = 8.0
    """WORKER_CREATE_GRACE_SECONDS: longer than the latest a late answer can land."""
    jira_search_lag: float = 2.0
    """JIRA_SEARCH_LAG_SECONDS: longer than the fake Jira's own lag."""
    fake_search_lag: float = 1.0
    lease: float = 3.0
    retry_base: float = 0.5
    retry_max: float = 5.0
    replicas: int = 2

    def worker_env(self) -> dict[str, str]:
        return {
            "WORKER_HTTP_TIMEOUT_SECONDS": str(self.http_timeout),
            "WORKER_CREATE_GRACE_SECONDS": str(self.create_grace),
            "JIRA_SEARCH_LAG_SECONDS": str(self.jira_search_lag),
            "WORKER_LEASE_SECONDS": str(self.lease),
            "WORKER_RETRY_BASE_SECONDS": str(self.retry_base),
            "WORKER_RETRY_MAX_SECONDS": str(self.retry_max),
            "WORKER_FETCH_TIMEOUT_SECONDS": "1",
            "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
        }


class Exited(Exception):
    """The process ended while we waited for it to become ready."""


class Service(ABC):
    """One process of the system, killed by its own PID and started again on the same ports."""

    name: str
    kind: str

    @abstractmethod
    def alive(self) -> bool: ...

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL."""

    @abstractmethod
    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""

    @abstractmethod
    async def ready(self) -> bool: ...

    @abstractmethod
    async def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start again with the same argv and environment; return once it is ready."""


class ProcessService(Service):
    """One of our services: `python -m services.<name>`, ready when its health URL answers 200."""

    def __init__(self, name: str, kind: str, process: Process, ready_url: str) -> None:
        self.name = name
        self.kind = kind
        self.process = process
        self.ready_url = ready_url

    def alive(self) -> bool:
        return self.process.alive()

    def kill(self) -> None:
        self.process.kill()

    def freeze(self) -> None:
        """SIGSTOP: a process paused as by a debugger, a GC pause or a VM migration; it holds its sockets."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.alive():
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.process.stop(timeout=20)

    async def ready(self) -> bool:
        return self.alive() and await answers_ok(self.ready_url, timeout=2)

    async def start(self, timeout: float = READY_TIMEOUT) -> None:
        self.process.start()

        async def probe() -> bool:
            if not self.alive():
                raise Exited(f"{self.name} exited with {self.process.proc and self.process.proc.returncode}")
            return await answers_ok(self.ready_url, timeout=2)

        await eventually(probe, timeout=timeout, interval=0.2, what=f"{self.name} to be ready")


class ServerService(Service, Generic[ServerT]):
    """A server of the tests' support, SIGKILLed and started again on the same port and data directory."""

    def __init__(self, server: ServerT, name: str) -> None:
        self.server: ServerT = server
        self.name = self.kind = name

    def alive(self) -> bool:
        return self.server.process is not None and self.server.process.alive()

    def kill(self) -> None:
        self.server.kill()

    async def ready(self) -> bool:
        return self.alive() and port_open(self.server.port)


class NatsService(ServerService[NatsServer]):
    """nats-server, restarted on the same port and store directory."""

    def __init__(self, server: NatsServer) -> None:
        super().__init__(server, "nats")

    def stop(self) -> None:
        self.server.stop()

    async def start(self, timeout: float = READY_TIMEOUT) -> None:
        await asyncio.to_thread(self.server.start)


class MariaDBService(ServerService[MariaDB]):
    """The database, SIGKILLed and restarted on the same port and data directory (its owner stops it at the end)."""

    def __init__(self, server: MariaDB) -> None:
        super().__init__(server, "mariadb")

    def stop(self) -> None:
        """Left running: the test or the soak that started it stops it."""

    async def start(self, timeout: float = READY_TIMEOUT) -> None:
        await asyncio.to_thread(self.server.restart)


@dataclass
class System:
    workdir: Path
    database_url: str
    vendors: Vendors
    timings: Timings = field(default_factory=Timings)
    nats: NatsService | None = None
    services: list[ProcessService] = field(default_factory=list)
    mariadb: MariaDBService | None = None
    """The database as a victim too, when the system was given its server."""
    cluster: NatsCluster | None = None
    """With `cluster_size`: three nats-server nodes, R3 streams and buckets (the NATS chaos owns the nodes)."""
    cluster_size: int = 0
    api_replicas: int = 1

    @property
    def nats_url(self) -> str:
        """NATS_URL: comma-separated for a cluster."""
        if self.cluster is not None:
            return self.cluster.nats_url
        assert self.nats is not None
        return self.nats.server.url

    @property
    def nats_servers(self) -> list[str]:
        return self.nats_url.split(",")

    @property
    def api(self) -> ProcessService:
        return next(s for s in self.services if s.kind == "api")

    @property
    def api_url(self) -> str:
        return self.api.ready_url.removesuffix("/health/live")

    @property
    def api_urls(self) -> list[str]:
        return [s.ready_url.removesuffix("/health/live") for s in self.services if s.kind == "api"]

    def everything(self) -> list[Service]:
        database: list[Service] = [self.mariadb] if self.mariadb else []
        return database + ([self.nats] if self.nats else []) + list(self.services)

    def _service(self, kind: str, name: str, args: list[str], env: Mapping[str, str], ready: str) -> ProcessService:
        process = Process(name, [sys.executable, "-m", *args], env, self.workdir / "logs" / f"{name}.log")
        service = ProcessService(name, kind, process, ready)
        self.services.append(service)
        return service

    async def start(self) -> None:
        if self.cluster_size:
            self.cluster = await asyncio.to_thread(NatsCluster(self.workdir / "nats", self.cluster_size).start)
            await self.cluster.wait_formed()
        else:
            self.nats = NatsService(NatsServer(self.workdir / "nats"))
            await self.nats.start()
        base = service_env(NATS_URL=self.nats_url, LOG_LEVEL="INFO")
        port = free_port()
        replicas = {"STREAM_REPLICAS": str(self.cluster_size)} if self.cluster_size else {}
        eventhandler = self._service(
            "eventhandler",
            "eventhandler",
            ["services.eventhandler"],
            base | replicas | {"HEALTH_PORT": str(port)},
            f"http://127.0.0.1:{port}/health/ready",
        )
        await eventhandler.start()  # streams, consumers and buckets exist before any event or worker
        apis = []
        for replica in range(1, self.api_replicas + 1):
            port = free_port()
            api_env = base | {"DATABASE_URL": self.database_url, "API_HOST": "127.0.0.1", "API_PORT": str(port)}
            # Responders act from outside too: the vendors' signing secrets, and who the workers are (echoes).
            api_env |= two_way_env(self.vendors.zendesk.email) | {"JIRA_ACCOUNT_ID": self.vendors.jira.account_id}
            api_env["INTEGRATION_KEYS"] = f"{storm.INTEGRATION}:{storm.ROUTING_KEY}"  # the alert storm's Events v2
            name = "api" if self.api_replicas == 1 else f"api-{replica}"
            apis.append(self._service("api", name, ["services.api"], api_env, f"http://127.0.0.1:{port}/health/live"))
        workers = []
        for worker in WORKERS:
            for replica in range(1, self.timings.replicas + 1):
                port = free_port()
                env = base | self.timings.worker_env() | self.vendors.env(worker) | {"HEALTH_PORT": str(port)}
                env["HEALTH_HOST"] = "127.0.0.1"
                ready = f"http://127.0.0.1:{port}/health/ready"
                args = ["services.workers", worker]
                workers.append(self._service("worker", f"{worker}-{replica}", args, env, ready))
        await asyncio.gather(*(a.start() for a in apis), *(w.start() for w in workers))

    async def all_ready(self) -> bool:
        results = await asyncio.gather(*(s.ready() for s in self.everything()))
        nodes = self.cluster.nodes if self.cluster else []
        return all(results) and all(node.alive() and port_open(node.port) for node in nodes)

    def stop(self) -> None:
        """SIGTERM every service (the workers first, nats-server last)."""
        for service in reversed(self.services):
            if service.alive():
                service.stop()
        if self.nats is not None:
            self.nats.stop()
        if self.cluster is not None:
            self.cluster.stop()

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for service in self.services:
            text = service.process.output().splitlines()[-lines:]
            out.append(f"--- {service.name} ---\n" + "\n".join(text))
        return "\n".join(out)
