"""`just dev`: the whole system in one terminal on embedded defaults; Ctrl-C stops all of it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"
WORKERS = ("jira", "slack", "zendesk", "webhooks")
COLOURS = ("\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[31m")
RESET = "\033[0m"
STOP_GRACE_SECONDS = 25
DEV_INTEGRATION_KEYS = "dev:dev-routing-key-local"


def nats_address(url: str) -> tuple[str, int]:
    first = urlparse(url.split(",")[0].strip())
    return first.hostname or "127.0.0.1", first.port or 4222


def answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
        return True
    return False


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    return str(candidate) if candidate.exists() else "nats-server"


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], colour: str) -> None:
        self.name, self.argv, self.env, self.colour = name, argv, env, colour
        self.proc: asyncio.subprocess.Process | None = None
        self.pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        )
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        prefix = f"{self.colour}{self.name:>13} |{RESET} " if sys.stdout.isatty() else f"{self.name:>13} | "
        async for line in self.proc.stdout:
            sys.stdout.write(prefix + line.decode(errors="replace"))
            sys.stdout.flush()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self.pump is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pump, 2)


def environment(base: dict[str, str], *, terminal: bool) -> dict[str, str]:
    """The children's environment: embedded defaults under what the caller set."""
    env = dict(base)
    env.setdefault("NATS_URL", "nats://127.0.0.1:4222")
    env.setdefault("DATABASE_URL", "sqlite+aiosqlite:///./var/incidents.db")
    env.setdefault("LOG_FORMAT", "console")
    # The children write to our pipe: colour their lines only when ours reach a terminal.
    env.setdefault("LOG_COLOUR", "1" if terminal else "0")
    # A development routing key, so the README's Events v2 example works as written.
    env.setdefault("INTEGRATION_KEYS", DEV_INTEGRATION_KEYS)
    # Webhook receivers in development usually listen on localhost (link-local stays refused).
    env.setdefault("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def migrated(env: dict[str, str]) -> bool:
    """`alembic upgrade head` on the environment's DATABASE_URL; False when it failed."""
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alembic", "upgrade", "head", env=env, cwd=ROOT
    )
    return await migrate.wait() == 0


async def until_stopped(children: list[Child], name: str) -> int:
    """Waits for Ctrl-C or SIGTERM (0) or for a child to exit on its own (1); the caller stops the children."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exited = [asyncio.create_task(c.proc.wait()) for c in children if c.proc]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *exited], return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if stopper not in done:
        crashed = [c.name for c in children if c.proc and c.proc.returncode is not None]
        print(f"{name}: {', '.join(crashed)} exited; stopping the rest", file=sys.stderr)
        status = 1
    print(f"{name}: stopping…", flush=True)
    return status


async def main() -> int:
    env = environment(dict(os.environ), terminal=sys.stdout.isatty())
    VAR.mkdir(exist_ok=True)
    python = sys.executable
    children: list[Child] = []
    host, port = nats_address(env["NATS_URL"])
    if answers(host, port):
        print(f"dev: using the NATS server already answering on {host}:{port}")
    else:
        nats = Child(
            "nats-server",
            [
                nats_server_binary(),
                "-js",
                "-a",
                host,
                "-p",
                str(port),
                "-sd",
                str(VAR / "nats"),
                "-m",
                env.get("NATS_MONITOR_PORT", "8222"),
            ],
            env,
            COLOURS[0],
        )
        await nats.start()
        children.append(nats)
        for _ in range(100):
            if answers(host, port):
                break
            await asyncio.sleep(0.1)
        else:
            print("dev: nats-server did not start", file=sys.stderr)
            await nats.stop()
            return 1
    if not await migrated(env):
        for child in reversed(children):
            await child.stop()
        return 1
    services = [
        Child("api", [python, "-m", "services.api"], env, COLOURS[1]),
        Child("eventhandler", [python, "-m", "services.eventhandler"], env | {"HEALTH_PORT": "8081"}, COLOURS[2]),
    ]
    for n, worker in enumerate(WORKERS):
        worker_env = env | {"HEALTH_PORT": str(8082 + n)}
        services.append(
            Child(
                f"worker-{worker}",
                [python, "-m", "services.workers", worker],
                worker_env,
                COLOURS[(3 + n) % len(COLOURS)],
            )
        )
    for child in services:
        await child.start()
    children += services
    base = f"http://{env.get('API_HOST', '127.0.0.1')}:{env.get('API_PORT', '8000')}"
    print(f"dev: API on {base}, web console on {base}/ui/ — Ctrl-C stops everything")
    keys = [entry.split(":", 1) for entry in env["INTEGRATION_KEYS"].split(",") if ":" in entry]
    for name, key in keys:
        print(f"dev: POST {base}/v2/enqueue accepts routing_key {key!r} (integration {name!r})")

    status = await until_stopped(children, "dev")
    # Services first, in parallel, so they can drain; NATS last.
    await asyncio.gather(*(c.stop() for c in children if c.name != "nats-server"))
    for child in children:
        if child.name == "nats-server":
            await child.stop()
    print("dev: stopped")
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
