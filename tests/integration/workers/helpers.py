"""Shared pieces of the worker integration tests: timings, running workers, and waiting for settlement."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.workers.httpclient import HttpClient
from services.workers.records import IncidentRecord, decode_record
from services.workers.runner import Runner
from services.workers.settings import RunnerSettings
from shared.events import STREAM
from shared.jetstream import ref_key, refs_bucket
from tests.support.polling import eventually
from tests.support.processes import Process

# Short, so that deliveries held by a killed worker come back within a test's patience.
ACK_WAIT = 2.0
WORKERS = ("jira", "slack", "zendesk")

FAST = RunnerSettings(
    concurrency=8,
    fetch_batch=20,
    fetch_timeout=0.5,
    lease_ttl=3.0,
    retry_base=0.05,
    retry_max=0.5,
    shutdown_grace=3.0,
)


@dataclass
class RunningWorker:
    runner: Runner
    task: asyncio.Task[None]
    stop_event: asyncio.Event
    nc: Client
    client: HttpClient

    async def stop(self) -> None:
        self.stop_event.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=15)
        await self.client.aclose()
        await self.nc.drain()


StartWorker = Callable[..., Awaitable[RunningWorker]]


async def settled(js: JetStreamContext, worker: str, timeout: float = 20.0) -> None:
    """Wait until every message in the stream was delivered to the worker and acked or terminated."""

    async def probe() -> bool:
        last = (await js.stream_info(STREAM)).state.last_seq
        info = await js.consumer_info(STREAM, worker)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        # The ack floor, not num_pending alone: right after a publish the consumer may not count it yet.
        assert (floor, info.num_pending, info.num_ack_pending) == (last, 0, 0), (floor, last, info.num_ack_pending)
        return True

    await eventually(probe, timeout=timeout, what=f"{worker} consumer to settle")


async def load_record(js: JetStreamContext, worker: str, incident_id: int) -> IncidentRecord | None:
    kv = await js.key_value(refs_bucket(worker))
    try:
        entry = await kv.get(ref_key(incident_id))
    except nats.js.errors.KeyNotFoundError:
        return None
    return decode_record(entry.value or b"")


StartProcess = Callable[[str, Mapping[str, str]], Awaitable[Process]]
