"""A fixed-rate (open-loop) HTTP load generator on asyncio streams, for the half-rate phase.

wrk2 is not packaged, and wrk is closed-loop: a slow answer delays the next request and hides the
wait (coordinated omission). Here request i is due at t0 + i/rate whatever happened before, and its
latency is measured from that due time, so a stall counts against the system, not the generator.
Keep-alive connections are reused; when all are busy a due request waits for one (and that wait counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass

from scripts.bench.stats import percentiles_ms


@dataclass
class OpenLoopResult:
    method: str
    target_rate: float
    achieved_rate: float
    requests: int
    ok: int
    errors: int
    duration_s: float
    connections: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    send_lag_p99_ms: float | None
    """How late the generator itself sent requests (scheduling on a busy machine); part of the latency."""
    ended_at: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def post(self, raw: bytes) -> int:
        self.writer.write(raw)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def run_open_loop(
    host: str, port: int, path: str, body: bytes, *, rate: float, duration: float, connections: int
) -> OpenLoopResult:
    raw = _request(host, port, path, body)
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    opened: list[_Connection] = []
    for _ in range(connections):
        reader, writer = await asyncio.open_connection(host, port)
        conn = _Connection(reader, writer)
        opened.append(conn)
        idle.put_nowait(conn)
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    ok = 0
    loop = asyncio.get_running_loop()

    async def one(due: float) -> None:
        nonlocal errors, ok
        lags.append(loop.time() - due)
        conn = await idle.get()
        try:
            status = await conn.post(raw)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            errors += 1
            conn.close()
            reader, writer = await asyncio.open_connection(host, port)
            conn = _Connection(reader, writer)
            opened.append(conn)
        else:
            latencies.append(loop.time() - due)
            if 200 <= status < 300:
                ok += 1
            else:
                errors += 1
        finally:
            idle.put_nowait(conn)

    interval = 1.0 / rate
    total = max(1, int(rate * duration))
    tasks: list[asyncio.Task[None]] = []
    started = loop.time()
    try:
        for i in range(total):
            due = started + i * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()
    ended_at = time.time()
    elapsed = loop.time() - started
    p = percentiles_ms(latencies, (50, 90, 99, 100))
    lag = percentiles_ms(lags, (99,))
    return OpenLoopResult(
        method="open loop on asyncio streams in the benchmark process: request i due at t0 + i/rate, "
        "latency from its due time (no coordinated omission)",
        target_rate=round(rate, 1),
        achieved_rate=round(len(latencies) / (elapsed or 1), 1),
        requests=total,
        ok=ok,
        errors=errors,
        duration_s=round(elapsed, 3),
        connections=connections,
        p50_ms=p[50],
        p90_ms=p[90],
        p99_ms=p[99],
        max_ms=p[100],
        send_lag_p99_ms=lag[99],
        ended_at=ended_at,
    )
