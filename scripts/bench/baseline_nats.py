"""Raw JetStream baseline: `js.publish_async` of event-sized messages (with Nats-Msg-Id) to a file stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig

from scripts.bench.procstats import CpuWindow
from shared.events import MSG_ID_HEADER, CloudEvent, EventData, IncidentSnapshot, encode_event

STREAM = "BENCH_RAW"
SUBJECT = "benchraw.created"
MAX_PENDING = 4000


@dataclass
class NatsResult:
    method: str
    messages: int
    payload_bytes: int
    failed: int
    cpu_s: dict[str, float]
    """CPU seconds of nats-server, the benchmark process (the client) and everything else on the machine."""
    duration_s: float
    msgs_per_s: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def created_event(incident_id: int, message: str, *, requestid: str | None = None, actor: str | None = None) -> bytes:
    """An encoded incident.created event of a new incident, the size the pipeline publishes."""
    now = datetime.now(UTC)
    snapshot = IncidentSnapshot(
        id=incident_id,
        status="unresolved",
        acknowledged="no",
        message=message,
        comments=[],
        version=1,
        created_at=now,
        updated_at=now,
    )
    event = CloudEvent(
        id=str(uuid.uuid4()),
        type="incident.created",
        subject=str(incident_id),
        time=now,
        incidentversion=1,
        data=EventData(incident=snapshot),
        requestid=requestid,
        actor=actor,
    )
    return encode_event(event)


async def run_raw_jetstream(nats_url: str, pids: dict[str, int], *, duration: float, warmup: float) -> NatsResult:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(publish_async_max_pending=MAX_PENDING)
        await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT], storage=StorageType.FILE))
        payload = created_event(123456, "bench incident", requestid=uuid.uuid4().hex, actor="anonymous")
        failed = 0

        def count_failure(future: asyncio.Future[Any]) -> None:
            nonlocal failed
            if future.cancelled() or future.exception() is not None:
                failed += 1

        async def burst(seconds: float) -> tuple[int, float]:
            sent = 0
            started = time.monotonic()
            until = started + seconds
            while time.monotonic() < until:
                for _ in range(100):
                    future = await js.publish_async(SUBJECT, payload, headers={MSG_ID_HEADER: str(uuid.uuid4())})
                    future.add_done_callback(count_failure)
                sent += 100
            await js.publish_async_completed()
            return sent, time.monotonic() - started

        if warmup:
            await burst(warmup)
        failed = 0
        window = CpuWindow(pids).start()
        sent, elapsed = await burst(duration)
        cpu = window.stop()
        await js.delete_stream(STREAM)
    finally:
        await nc.close()
    return NatsResult(
        method=f"js.publish_async, max_pending {MAX_PENDING}, Nats-Msg-Id header, file storage",
        messages=sent,
        payload_bytes=len(payload),
        failed=failed,
        cpu_s=cpu,
        duration_s=round(elapsed, 3),
        msgs_per_s=round(sent / elapsed, 1),
    )
