"""CPU seconds and peak RSS of a process, read from /proc (no psutil)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid` so far, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the highest resident set size since the process started, in MiB."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib / 1024


def rss_mb(pid: int) -> float | None:
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else kib / 1024


@dataclass
class Usage:
    """One process's CPU seconds over a window and its peak RSS when the window closed."""

    cpu_s: float
    peak_rss_mb: float


class CpuWindow:
    """CPU seconds each named process spends between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float] = {}

    def start(self) -> CpuWindow:
        self._start = {name: cpu_seconds(pid) or 0.0 for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for name, pid in self.pids.items():
            now = cpu_seconds(pid)
            if now is not None:
                used[name] = round(now - self._start.get(name, 0.0), 3)
        return used
