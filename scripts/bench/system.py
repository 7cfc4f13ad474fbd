"""The production-like system as separate processes: MariaDB, nats-server, API, event handler, three workers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scripts.bench.children import Children
from tests.support.mariadb import MariaDB
from tests.support.processes import ROOT, NatsServer, Process, free_port
from tests.support.services import service_env

WORKERS = ("jira", "slack", "zendesk")
SYNC_ALWAYS = "jetstream {\n  sync_interval: always\n}\n"
"""The durability setting of deploy/k8s/nats/nats.conf, for a nats-server started with -js -sd."""
EVENTS = ["incident.created"]
DATABASE = "incidents"


@dataclass
class Infra:
    """The two servers every phase uses; baselines run against them before the services start."""

    mariadb: MariaDB
    nats: NatsServer

    @property
    def pids(self) -> dict[str, int]:
        assert self.mariadb.process is not None and self.nats.process is not None
        return {"mariadbd": self.mariadb.process.pid, "nats-server": self.nats.process.pid}


@dataclass
class Services:
    database_url: str
    api_url: str
    api: Process
    eventhandler: Process
    workers: dict[str, Process]
    health_urls: dict[str, str] = field(default_factory=dict)

    @property
    def pids(self) -> dict[str, int]:
        found = {"api": self.api.pid, "eventhandler": self.eventhandler.pid}
        found.update({f"worker-{name}": p.pid for name, p in self.workers.items()})
        return found

    @property
    def log_paths(self) -> dict[str, Path]:
        return {name: p.log_path for name, p in self.workers.items()}


def start_infra(workdir: Path, children: Children) -> Infra:
    mariadb = children.start(MariaDB(workdir / "mariadb"))
    nats = children.start(NatsServer(workdir / "nats", config=SYNC_ALWAYS))  # as deployed: fsync before each ack
    return Infra(mariadb, nats)


def write_subscriptions(workdir: Path) -> Path:
    """Every worker subscribed to incident.created only (the event handler reads SUBSCRIPTIONS_FILE)."""
    path = workdir / "subscriptions.toml"
    path.write_text("".join(f'[workers.{name}]\nevents = ["created"]\n\n' for name in WORKERS))
    return path


def code_env(code_root: Path) -> dict[str, str]:
    """Environment that makes `python -m services.…` import another checkout's code (no cwd on sys.path)."""
    if code_root == ROOT:
        return {}
    return {"PYTHONSAFEPATH": "1", "PYTHONPATH": str(code_root), "PYTHONDONTWRITEBYTECODE": "1"}


def migrate(database_url: str, code_root: Path = ROOT) -> None:
    env = service_env(DATABASE_URL=database_url, **code_env(code_root))
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=code_root, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"alembic upgrade head failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


async def wait_http_ok(url: str, process: Process, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1.0) as http:
        while True:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited while starting:\n{process.output()[-3000:]}")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} not ready at {url} after {timeout}s:\n{process.output()[-3000:]}")
            await asyncio.sleep(0.1)


def api_argv(server: str, port: int) -> list[str]:
    """`python -m services.api` (uvicorn, as deployed), or the same app under granian for comparison."""
    if server == "uvicorn":
        return [sys.executable, "-m", "services.api"]
    granian = str(Path(sys.executable).parent / "granian")
    return [
        granian, "--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning", "scripts.bench.asgi:create_app",
    ]  # fmt: skip


async def start_services(
    infra: Infra,
    workdir: Path,
    children: Children,
    *,
    api_server: str = "uvicorn",
    extra_env: dict[str, str] | None = None,
    code_root: Path = ROOT,
) -> Services:
    infra.mariadb.sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;")
    database_url = f"{infra.mariadb.admin_url}/{DATABASE}"
    await asyncio.to_thread(migrate, database_url, code_root)
    nats_url = infra.nats.url
    logs = workdir / "logs"
    extra = code_env(code_root) | dict(extra_env or {})

    eh_port = free_port()
    subscriptions = str(write_subscriptions(workdir))
    eh_env = service_env(
        **({"NATS_URL": nats_url, "SUBSCRIPTIONS_FILE": subscriptions, "HEALTH_PORT": str(eh_port)} | extra)
    )
    eventhandler = children.add(
        Process("eventhandler", [sys.executable, "-m", "services.eventhandler"], eh_env, logs / "eventhandler.log")
    ).start()
    health = {"eventhandler": f"http://127.0.0.1:{eh_port}/health/ready"}
    await wait_http_ok(health["eventhandler"], eventhandler)

    workers: dict[str, Process] = {}
    for name in WORKERS:
        port = free_port()
        env = service_env(**({"NATS_URL": nats_url, "HEALTH_HOST": "127.0.0.1", "HEALTH_PORT": str(port)} | extra))
        workers[name] = children.add(
            Process(f"worker-{name}", [sys.executable, "-m", "services.workers", name], env, logs / f"{name}.log")
        ).start()
        health[f"worker-{name}"] = f"http://127.0.0.1:{port}/health/ready"

    api_port = free_port()
    api_env = service_env(
        **(
            {"DATABASE_URL": database_url, "NATS_URL": nats_url, "API_HOST": "127.0.0.1", "API_PORT": str(api_port)}
            | extra
        )
    )
    api = children.add(Process("api", api_argv(api_server, api_port), api_env, logs / "api.log")).start()
    api_url = f"http://127.0.0.1:{api_port}"
    health["api"] = f"{api_url}/health/ready"
    await wait_http_ok(health["api"], api)
    for name, process in workers.items():
        await wait_http_ok(health[f"worker-{name}"], process)
    services = Services(database_url, api_url, api, eventhandler, workers, health)
    await ensure_subscriptions(services)
    return services


async def ensure_subscriptions(services: Services) -> dict[str, list[str]]:
    """The file should have done it; PUT /subscriptions/{worker} wherever it did not."""
    async with httpx.AsyncClient(base_url=services.api_url, timeout=10) as http:
        current = (await http.get("/subscriptions")).json()
        for name in WORKERS:
            if sorted(current.get(name, [])) != EVENTS:
                response = await http.put(f"/subscriptions/{name}", json={"events": EVENTS})
                response.raise_for_status()
        final = (await http.get("/subscriptions")).json()
    wrong = {name: final.get(name) for name in WORKERS if sorted(final.get(name, [])) != EVENTS}
    if wrong:
        raise RuntimeError(f"subscriptions are not {EVENTS}: {wrong}")
    return {name: final[name] for name in WORKERS}


def stop_services(services: Services, children: Children) -> dict[str, int | None]:
    """API first (its relay flushes), then the workers, then the event handler; returns exit codes."""
    codes: dict[str, int | None] = {}
    order = [services.api, *services.workers.values(), services.eventhandler]
    for process in order:
        codes[process.name] = process.stop(timeout=25)
        children.forget(process)
    return codes
