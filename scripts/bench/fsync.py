"""How fsyncs scale on this machine: `python -m scripts.bench.fsync`.

- the disk: threads appending a 400-byte record and fsyncing, each on its own file, in `--folder`;
- JetStream with `sync_interval: always` (one node, R1 streams, as `just bench` runs it) and with the default:
  the same publishes, `--in-flight` at once and then open loop at `--rate`, to one stream or spread over several.

A one-node file stream writes and fsyncs each message before the next (`flushPendingMsgsLocked` under the
store's lock), so publishes in flight to one stream never share an fsync; several streams fsync at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig

from scripts.bench import meta
from scripts.bench.baseline_nats import created_event
from scripts.bench.stats import percentiles_ms
from scripts.bench.system import SYNC_ALWAYS
from shared.events import MSG_ID_HEADER
from tests.support.processes import NatsServer

RECORD = b"x" * 400


def disk_fsyncs(folder: Path, threads: int, seconds: float) -> dict[str, Any]:
    """fsyncs per second and their latency with `threads` appending and fsyncing their own file at once."""
    latencies: list[float] = []
    lock = threading.Lock()

    def append_and_sync(number: int) -> None:
        path = folder / f"fsync-{number}.dat"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        mine: list[float] = []
        try:
            end = time.perf_counter() + seconds
            while (started := time.perf_counter()) < end:
                os.write(fd, RECORD)
                os.fsync(fd)
                mine.append(time.perf_counter() - started)
        finally:
            os.close(fd)
            path.unlink()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=append_and_sync, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    p = percentiles_ms(latencies, (50, 99, 100))
    return {
        "threads": threads,
        "fsyncs_per_s": round(len(latencies) / seconds),
        "p50_ms": p[50],
        "p99_ms": p[99],
        "max_ms": p[100],
    }


@contextlib.asynccontextmanager
async def fresh_streams(url: str, streams: int) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """`streams` fresh R1 file streams, deleted after; yields a publish of message `number` (round-robin)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    run = uuid.uuid4().hex[:8]
    names = [f"FSYNC_{run}_{n}" for n in range(streams)]
    for name in names:
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"], storage=StorageType.FILE))
    payload = created_event(123456, "bench incident", requestid=uuid.uuid4().hex, actor="anonymous")

    async def publish(number: int) -> None:
        subject = f"{names[number % streams].lower()}.created"
        await js.publish(subject, payload, headers={MSG_ID_HEADER: f"{run}-{number}"}, timeout=30)

    try:
        yield publish
    finally:
        for name in names:
            await js.delete_stream(name)
        await nc.close()


async def jetstream_publishes(url: str, streams: int, messages: int, in_flight: int) -> dict[str, Any]:
    """`messages` publishes, `in_flight` at once, round-robin over `streams` fresh R1 file streams."""
    async with fresh_streams(url, streams) as publish:
        slots = asyncio.Semaphore(in_flight)
        latencies: list[float] = []

        async def one(number: int) -> None:
            async with slots:
                started = time.perf_counter()
                await publish(number)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(messages)))
        elapsed = time.perf_counter() - started
    p = percentiles_ms(latencies, (50, 99, 100))
    return {
        "streams": streams,
        "in_flight": in_flight,
        "messages": messages,
        "msgs_per_s": round(messages / elapsed),
        "p50_ms": p[50],
        "p99_ms": p[99],
        "max_ms": p[100],
    }


async def jetstream_at_rate(url: str, streams: int, rate: float, seconds: float) -> dict[str, Any]:
    """Publishes due at a fixed rate (open loop, each timed from its due time), round-robin over `streams`."""
    async with fresh_streams(url, streams) as publish:
        loop = asyncio.get_running_loop()
        latencies: list[float] = []

        async def one(number: int, due: float) -> None:
            await publish(number)
            latencies.append(loop.time() - due)

        tasks: list[asyncio.Task[None]] = []
        started = loop.time()
        for number in range(int(rate * seconds)):
            due = started + number / rate
            if (delay := due - loop.time()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(number, due)))
        await asyncio.gather(*tasks)
    p = percentiles_ms(latencies, (50, 90, 99, 100))
    return {"streams": streams, "rate": rate, "p50_ms": p[50], "p90_ms": p[90], "p99_ms": p[99], "max_ms": p[100]}


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    disk = [disk_fsyncs(args.folder, threads, args.seconds) for threads in args.threads]
    result: dict[str, Any] = {"disk": disk}
    for label, config in (("jetstream_sync_always", SYNC_ALWAYS), ("jetstream_sync_default", None)):
        nats_server = NatsServer(workdir / label, config=config).start()
        try:
            rows = []
            for streams in args.streams if config else args.streams[:1]:
                rows.append(await jetstream_publishes(nats_server.url, streams, args.messages, args.in_flight))
                rows.append(await jetstream_at_rate(nats_server.url, streams, args.rate, args.seconds))
            result[label] = rows
        finally:
            nats_server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.fsync", description=__doc__)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()), help="where the disk test writes")
    parser.add_argument("--seconds", type=float, default=4.0, help="per disk measurement")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--messages", type=int, default=4000, help="publishes per JetStream measurement")
    parser.add_argument("--in-flight", type=int, default=64, help="publishes awaiting their ack at once")
    parser.add_argument("--rate", type=float, default=416.0, help="publishes per second in the open-loop measurement")
    args = parser.parse_args(argv)
    loadavg = meta.loadavg()
    workdir = Path(tempfile.mkdtemp(prefix="incidents-fsync-"))
    try:
        result = asyncio.run(measure(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"loadavg_at_start": loadavg, "loadavg_at_end": meta.loadavg(), **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
