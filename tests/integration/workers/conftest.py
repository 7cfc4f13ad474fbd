"""Fixtures: the INCIDENTS stream with the workers' consumers, fake vendors, and in-process runners."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.workers.base import WorkerFactory
from services.workers.httpclient import HttpClient
from services.workers.runner import Runner
from services.workers.settings import RunnerSettings
from services.workers.store import KvRecordStore, open_bucket
from shared.events import ALL_SUBJECTS, STREAM
from shared.jetstream import incidents_stream_config, worker_consumer_config
from tests.integration.workers.helpers import ACK_WAIT, FAST, WORKERS, RunningWorker, StartProcess, StartWorker
from tests.integration.workers.vendors import Vendor, make_vendor
from tests.support.polling import eventually
from tests.support.processes import NatsServer, Process, answers_ok


@pytest.fixture
async def js(nc: Client) -> JetStreamContext:
    context = nc.jetstream()
    await context.add_stream(incidents_stream_config())
    for worker in WORKERS:
        await context.add_consumer(STREAM, worker_consumer_config(worker, list(ALL_SUBJECTS), ack_wait=ACK_WAIT))
    return context


@pytest.fixture
async def start_worker(nats_server: NatsServer, js: JetStreamContext) -> AsyncIterator[StartWorker]:
    """Start a runner in this event loop, with its own NATS connection, as a replica would have."""
    started: list[RunningWorker] = []

    async def start(
        factory: WorkerFactory,
        env: Mapping[str, str],
        settings: RunnerSettings = FAST,
        *,
        owner: str | None = None,
        http_timeout: float = 5.0,
    ) -> RunningWorker:
        nc = await nats.connect(nats_server.url)
        client = HttpClient(timeout=http_timeout)
        worker = factory.from_env(env, client)
        context = nc.jetstream()
        store = KvRecordStore(await open_bucket(context, worker.name))
        runner = Runner(worker, context, store, settings, owner=owner)
        stop = asyncio.Event()
        running = RunningWorker(runner, asyncio.create_task(runner.run(stop)), stop, nc, client)
        started.append(running)

        async def bound() -> bool:
            assert not running.task.done(), "runner ended early"
            return runner.bound

        await eventually(bound, what="runner bound to its consumer")
        return running

    yield start
    for running in started:
        await running.stop()


@pytest.fixture(params=WORKERS)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    fake = request.getfixturevalue(f"fake_{request.param}")
    return make_vendor(request.param, fake, WORKER_CREATE_GRACE_SECONDS="0.5")


@pytest.fixture
async def start_process(tmp_path: Path) -> AsyncIterator[StartProcess]:
    """Run a worker as its own process and wait until it reports ready on its health port."""
    started: list[Process] = []

    async def start(name: str, env: Mapping[str, str]) -> Process:
        log = tmp_path / f"worker-{name}-{len(started)}.log"
        process = Process(name, [sys.executable, "-m", "services.workers", name], env, log).start()
        started.append(process)
        url = f"http://127.0.0.1:{env['HEALTH_PORT']}/health/ready"

        async def ready() -> bool:
            assert process.alive(), process.output()[-3000:]
            return await answers_ok(url)

        await eventually(ready, timeout=30, what=f"worker {name} to be ready")
        return process

    yield start
    for process in started:
        process.stop()
