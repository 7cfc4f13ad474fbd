"""What the run was measured on: machine, versions, settings."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

from tests.support.processes import nats_server_binary

PACKAGES = ("litestar", "uvicorn", "msgspec", "nats-py", "databases", "asyncmy", "aiosqlite", "SQLAlchemy", "structlog")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)  # noqa: S603 (our binaries)
    except OSError:
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def machine() -> dict[str, object]:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    found["nats-server"] = _version_of([nats_server_binary(), "--version"])
    for binary in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld"):
        if os.path.exists(binary):
            found["mariadb"] = _version_of([binary, "--version"])
            break
    return found
