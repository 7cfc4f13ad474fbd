"""CPU seconds and peak RSS of a process, read from /proc (no psutil)."""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """The PIDs of a process's children, grandchildren, ... (granian serves from child processes)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of a process and its live descendants."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(kid) or 0.0 for kid in descendants(pid))


def tree_peak_rss_mb(pid: int) -> float | None:
    """The largest VmHWM among a process and its descendants (each process's own peak)."""
    peaks = [p for p in (peak_rss_mb(x) for x in [pid, *descendants(pid)]) if p is not None]
    return max(peaks) if peaks else None


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


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICKS


class CpuWindow:
    """CPU seconds each named process spends between `start()` and `stop()`, and the whole machine's.

    The benchmark process itself (load generator, probes) is counted as "bench"; what the machine spent
    beyond our processes, wrk and the benchmark is `others_s`: other people's work on a shared machine.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float] = {}
        self._busy = 0.0
        self.used: dict[str, float] = {}
        self.machine_busy_s = 0.0

    def start(self) -> CpuWindow:
        self._busy = machine_busy_seconds()
        self._start = {name: tree_cpu_seconds(pid) or 0.0 for name, pid in self.pids.items()}
        self._start["bench"] = _own_cpu_seconds()
        return self

    def stop(self, extra_s: float = 0.0) -> dict[str, float]:
        """CPU seconds per process; `extra_s` is CPU spent by our processes not listed (wrk)."""
        used: dict[str, float] = {}
        for name, pid in self.pids.items():
            now = tree_cpu_seconds(pid)
            if now is not None:
                used[name] = round(now - self._start.get(name, 0.0), 3)
        # The benchmark process alone: its children are the services, counted above.
        used["bench"] = round(_own_cpu_seconds() - self._start["bench"], 3)
        self.machine_busy_s = round(machine_busy_seconds() - self._busy, 2)
        ours = sum(used.values()) + extra_s
        used["others"] = round(max(0.0, self.machine_busy_s - ours), 2)
        self.used = used
        return used
