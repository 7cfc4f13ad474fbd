"""`--profile`: py-spy samples the services during the API phase; collapsed stacks plus a text summary.

py-spy is not a project dependency: `pip install py-spy` into the virtualenv to use it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from scripts.bench.children import Children

# Which library a sample's time belongs to: walking from the innermost frame outwards, the first frame whose
# file (py-spy writes `func (pkg/module.py:line)`) starts with one of these prefixes; else "other".
GROUPS = (
    ("asyncmy (MySQL driver)", ("asyncmy/",)),
    ("databases", ("databases/",)),
    ("sqlalchemy (statement compile)", ("sqlalchemy/",)),
    ("logging (structlog + stdlib)", ("structlog/", "logging/", "shared/logging.py")),
    ("h11 (uvicorn's HTTP parser)", ("h11/",)),
    ("httptools", ("httptools/",)),
    ("uvicorn", ("uvicorn/",)),
    ("granian", ("granian/",)),
    ("litestar", ("litestar/",)),
    ("nats-py", ("nats/",)),
    ("msgspec", ("msgspec/",)),
    ("services/api relay + outbox", ("services/api/delivery/relay.py", "services/api/storage/outbox.py")),
    ("services/api", ("services/api/",)),
    ("services/eventhandler", ("services/eventhandler/",)),
    ("services/workers", ("services/workers/",)),
    ("shared", ("shared/",)),
    ("asyncio event loop + sockets", ("asyncio/", "selectors.py")),
)


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


class Profiler:
    """One `py-spy record --format raw` per process, for a fixed number of seconds."""

    def __init__(self, out_dir: Path, children: Children) -> None:
        self.out_dir = out_dir
        self.children = children
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, pids: dict[str, int], seconds: float) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            argv = [
                binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", "200",
                "--format", "raw", "--output", str(self.out_dir / f"{name}.collapsed"), "--nonblocking",
                "--subprocesses", "--gil",
            ]  # fmt: skip
            with (self.out_dir / f"{name}.py-spy.log").open("wb") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
            self.children.add_popen(f"py-spy-{name}", proc)
            self.procs[name] = proc

    async def finish(self) -> dict[str, dict[str, object]]:
        summaries: dict[str, dict[str, object]] = {}
        for name, proc in self.procs.items():
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), 60)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)
                await asyncio.to_thread(proc.wait)
            self.children.forget(proc)
            path = self.out_dir / f"{name}.collapsed"
            if path.exists():
                summary = summarize(path)
                summaries[name] = summary
                (self.out_dir / f"{name}.summary.txt").write_text(render(name, summary))
        return summaries


def summarize(path: Path, top: int = 25) -> dict[str, object]:
    total = 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if frames:
            own[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += count
        groups[_group(frames)] += count

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "groups_pct": share(groups),
        "self_pct": share(own),
        "inclusive_pct": share(inclusive),
    }


def _group(frames: list[str]) -> str:
    for frame in reversed(frames):
        where = frame.partition(" (")[2]
        for group, prefixes in GROUPS:
            if where.startswith(prefixes):
                return group
    return "other"


def _short(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/mod.py:12)` → `func (pkg/mod.py:12)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def render(name: str, summary: dict[str, object]) -> str:
    lines = [
        f"{name}: {summary['samples']} samples (py-spy --gil at 200 Hz: only while a thread holds the GIL, so "
        "Python work; syscalls, run-queue waits and idle time are left out)"
    ]
    for title, key in (
        ("by library (innermost known frame)", "groups_pct"),
        ("self", "self_pct"),
        ("inclusive", "inclusive_pct"),
    ):
        lines.append(f"\n{title}:")
        entries = summary[key]
        assert isinstance(entries, list)
        lines += [f"  {pct:5.1f}%  {frame}" for frame, pct in entries]
    return "\n".join(lines) + "\n"
