"""Every process the benchmark starts, stopped by its own PID on exit, error or Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from typing import Protocol, TypeVar

from tests.support.processes import Process


class Server(Protocol):
    """A server of the tests' support (MariaDB, nats-server) that starts its own process."""

    process: Process | None

    def start(self) -> object: ...


ServerT = TypeVar("ServerT", bound=Server)


class Children:
    """A registry of started processes; `stop_all()` stops them newest first, each by PID."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, Process | subprocess.Popen[bytes]]] = []

    def add(self, process: Process) -> Process:
        with self._lock:
            self._items.append((process.name, process))
        return process

    def start(self, server: ServerT) -> ServerT:
        """Starts `server` and registers its process, also when start-up fails half-way (it may be running)."""
        try:
            server.start()
        finally:
            if server.process is not None:
                self.add(server.process)
        return server

    def add_popen(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._items.append((name, proc))

    def forget(self, item: Process | subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._items = [(n, p) for n, p in self._items if p is not item]

    def stop(self, process: Process, timeout: float = 15.0) -> None:
        process.stop(timeout=timeout)
        self.forget(process)

    def stop_all(self) -> None:
        with self._lock:
            items = list(reversed(self._items))
            self._items.clear()
        for _, item in items:
            with contextlib.suppress(Exception):
                if isinstance(item, Process):
                    item.stop(timeout=20)
                else:
                    _stop_popen(item)


def _stop_popen(proc: subprocess.Popen[bytes]) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
