"""End-to-end delivery latency: from each event's CloudEvent `time` (set by the API when it commits the
incident) to the moment each worker acked it, read from the worker's JSON log line `event applied`
(logged right after `msg.ack()`, with `event_id` and a microsecond ISO `timestamp`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import msgspec
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from scripts.bench.stats import percentiles_ms
from shared.events import STREAM

# Log events that mean "this worker acked the event"; a future `event acked` line (with delay_ms) is preferred.
ACK_LINES = ("event acked", "event applied")


class _Incident(msgspec.Struct):
    message: str = ""


class _Data(msgspec.Struct):
    incident: _Incident


class _Event(msgspec.Struct):
    id: str
    time: datetime
    data: _Data


class _LogLine(msgspec.Struct):
    event: str = ""
    event_id: str | None = None
    timestamp: str | None = None
    delay_ms: float | None = None
    event_ids: list[str] | None = None
    """Every event of the incident that the same (coalesced) pass applied and acked."""


@dataclass
class StoredEvent:
    time: float
    """CloudEvent time as a Unix timestamp."""
    stored: float
    """When JetStream stored it (the stream's message timestamp)."""
    message: str


@dataclass
class Delivery:
    worker: str
    phase: str
    events: int
    acked: int
    """Events of the phase that the worker's log shows acked."""
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    from_stream_p50_ms: float | None = None
    """The second leg alone: stored on JetStream → acked by the worker."""
    from_stream_p99_ms: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def read_stream(js: JetStreamContext) -> dict[str, StoredEvent]:
    """Every event on INCIDENTS, through an ephemeral pull consumer (the stream keeps acked events)."""
    info = await js.stream_info(STREAM)
    total = int(info.state.messages)
    sub = await js.pull_subscribe(
        "incident.>",
        stream=STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=60.0),
    )
    decoder = msgspec.json.Decoder(_Event)
    found: dict[str, StoredEvent] = {}
    seen = 0
    try:
        while seen < total:
            try:
                msgs = await sub.fetch(1000, timeout=2.0)
            except (TimeoutError, NatsTimeoutError):
                break
            for msg in msgs:
                seen += 1
                event = decoder.decode(msg.data)
                stored = msg.metadata.timestamp.timestamp()
                found[event.id] = StoredEvent(event.time.timestamp(), stored, event.data.incident.message)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return found


def acks_from_log(path: Path) -> dict[str, tuple[float, float | None]]:
    """event_id → (ack timestamp, delay_ms if the worker logged one) from a JSON log."""
    decoder = msgspec.json.Decoder(_LogLine)
    acks: dict[str, tuple[float, float | None]] = {}
    with path.open("rb") as f:
        for raw in f:
            if b'"event_id"' not in raw or not any(name.encode() in raw for name in ACK_LINES):
                continue
            try:
                line = decoder.decode(raw)
            except msgspec.DecodeError:
                continue
            if line.event not in ACK_LINES or not line.event_id or not line.timestamp:
                continue
            at = datetime.fromisoformat(line.timestamp).timestamp()
            acks.setdefault(line.event_id, (at, line.delay_ms))
            for older in line.event_ids or ():
                acks.setdefault(older, (at, None))
    return acks


def delivery_stats(
    worker: str, phase: str, events: Iterable[tuple[str, StoredEvent]], acks: dict[str, tuple[float, float | None]]
) -> Delivery:
    delays: list[float] = []
    legs: list[float] = []
    count = 0
    for event_id, stored in events:
        count += 1
        ack = acks.get(event_id)
        if ack is None:
            continue
        at, delay_ms = ack
        delays.append(delay_ms / 1000 if delay_ms is not None else at - stored.time)
        legs.append(at - stored.stored)
    p = percentiles_ms(delays, (50, 90, 99, 100))
    leg = percentiles_ms(legs, (50, 99))
    return Delivery(worker, phase, count, len(delays), p[50], p[90], p[99], p[100], leg[50], leg[99])


def to_stream(events: Iterable[StoredEvent]) -> dict[str, float | None]:
    """The first leg: CloudEvent time (commit) → stored on JetStream (outbox relay + event handler)."""
    p = percentiles_ms([e.stored - e.time for e in events], (50, 90, 99, 100))
    return {"p50_ms": p[50], "p90_ms": p[90], "p99_ms": p[99], "max_ms": p[100]}


@dataclass
class PhaseDelivery:
    to_stream: dict[str, float | None]
    workers: dict[str, Delivery]


async def _acks_written(
    logs: dict[str, Path], wanted: set[str], timeout: float = 10.0
) -> dict[str, dict[str, tuple[float, float | None]]]:
    """Each worker's acks, read again until every wanted event is in every log: a service writes its info lines
    a batch at a time (shared/logwriter.py), so the last ones reach the file a moment after the ack."""
    deadline = time.monotonic() + timeout
    while True:
        acks = {worker: await asyncio.to_thread(acks_from_log, path) for worker, path in logs.items()}
        if all(wanted <= found.keys() for found in acks.values()) or time.monotonic() > deadline:
            return acks  # past the deadline: what is missing counts as not acked
        await asyncio.sleep(0.05)


async def measure(js: JetStreamContext, logs: dict[str, Path], phases: dict[str, str]) -> dict[str, PhaseDelivery]:
    """phases: label → the incident message its requests carried."""
    stored = await read_stream(js)
    wanted = {event_id for event_id, ev in stored.items() if ev.message in phases.values()}
    acks = await _acks_written(logs, wanted)
    result: dict[str, PhaseDelivery] = {}
    for label, message in phases.items():
        mine = [(event_id, ev) for event_id, ev in stored.items() if ev.message == message]
        workers = {worker: delivery_stats(worker, label, mine, acks[worker]) for worker in logs}
        result[label] = PhaseDelivery(to_stream([ev for _, ev in mine]), workers)
    return result
