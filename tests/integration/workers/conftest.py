"""Fixtures: the INCIDENTS stream with the workers' consumers, fake vendors, and in-process runners."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.workers.base import WorkerFactory
from services.workers.jira.worker import JiraWorker
from services.workers.records import IncidentRecord, decode_record
from services.workers.runner import Runner
from services.workers.settings import RunnerSettings
from services.workers.slack.worker import SlackWorker
from services.workers.store import KvRecordStore, open_bucket
from services.workers.zendesk.worker import ZendeskWorker
from shared.events import ALL_SUBJECTS, STREAM
from shared.jetstream import incidents_stream_config, ref_key, refs_bucket, worker_consumer_config
from tests.fakes.jira import FakeJira
from tests.fakes.server import FakeServer
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.support.polling import eventually
from tests.support.processes import NatsServer, Process, free_port

# Short, so that deliveries held by a killed worker come back within a test's patience.
ACK_WAIT = 2.0
WORKERS = ("jira", "slack", "zendesk")

FAST = RunnerSettings(
    concurrency=8,
    fetch_batch=20,
    fetch_timeout=0.5,
    lease_ttl=3.0,
    lease_wait=10.0,
    retry_base=0.05,
    retry_max=0.5,
    shutdown_grace=3.0,
)


@pytest.fixture
async def js(nc: Client) -> JetStreamContext:
    context = nc.jetstream()
    await context.add_stream(incidents_stream_config())
    for worker in WORKERS:
        await context.add_consumer(STREAM, worker_consumer_config(worker, list(ALL_SUBJECTS), ack_wait=ACK_WAIT))
    return context


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    fake = FakeJira()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk()
    fake.start()
    yield fake
    fake.stop()


def jira_env(fake: FakeJira, lag: float = 2.0) -> dict[str, str]:
    return {
        "JIRA_BASE_URL": fake.url,
        "JIRA_EMAIL": fake.email,
        "JIRA_API_TOKEN": fake.token,
        "JIRA_PROJECT_KEY": fake.project,
        "JIRA_SEARCH_LAG_SECONDS": str(lag),
    }


def slack_env(fake: FakeSlack) -> dict[str, str]:
    return {"SLACK_API_URL": fake.url, "SLACK_BOT_TOKEN": fake.token, "SLACK_CHANNEL": fake.channel}


def zendesk_env(fake: FakeZendesk) -> dict[str, str]:
    return {"ZENDESK_BASE_URL": fake.url, "ZENDESK_EMAIL": fake.email, "ZENDESK_API_TOKEN": fake.token}


@dataclass
class RunningWorker:
    runner: Runner
    task: asyncio.Task[None]
    stop_event: asyncio.Event
    nc: Client
    client: httpx.AsyncClient

    async def stop(self) -> None:
        self.stop_event.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=15)
        await self.client.aclose()
        await self.nc.drain()


StartWorker = Callable[..., Awaitable[RunningWorker]]


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
        client = httpx.AsyncClient(timeout=http_timeout)
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


async def settled(js: JetStreamContext, worker: str, timeout: float = 20.0) -> None:
    """Wait until every message of the worker's consumer is delivered and acked or terminated."""

    async def probe() -> bool:
        info = await js.consumer_info(STREAM, worker)
        assert info.num_pending == 0 and info.num_ack_pending == 0, (info.num_pending, info.num_ack_pending)
        return True

    await eventually(probe, timeout=timeout, what=f"{worker} consumer to settle")


async def load_record(js: JetStreamContext, worker: str, incident_id: int) -> IncidentRecord | None:
    kv = await js.key_value(refs_bucket(worker))
    try:
        entry = await kv.get(ref_key(incident_id))
    except nats.js.errors.KeyNotFoundError:
        return None
    return decode_record(entry.value or b"")


@dataclass
class Vendor:
    """One outside system seen through the same questions, for tests that hold for all three."""

    name: str
    factory: WorkerFactory
    fake: Any
    env: dict[str, str]
    create: dict[str, str]
    """method= and path= of the create call, for fault injection."""

    def objects(self, incident_id: int) -> int:
        if self.name == "jira":
            return len(self.fake.with_label(f"incident-{incident_id}"))
        if self.name == "slack":
            return len(self.fake.roots_for(incident_id))
        return len(self.fake.for_incident(incident_id))

    def posts(self, incident_id: int) -> list[str]:
        """Texts of the comments (or thread replies) on the incident's one object."""
        if self.name == "jira":
            return list(self.fake.only(incident_id).comment_texts())
        if self.name == "slack":
            return self.fake.replies(self.fake.only(incident_id).ts)
        return self.fake.only(incident_id).comment_bodies()[1:]

    def creates(self) -> int:
        """Create calls received (Slack: root messages, not thread replies)."""
        if self.name == "slack":
            with self.fake.lock:
                posts = [r.json() for r in self.fake.requests if r.path == "/chat.postMessage"]
            return sum(1 for p in posts if "thread_ts" not in p)
        return int(self.fake.count(self.create["method"], self.create["path"]))


def make_vendor(name: str, fake: FakeServer, **extra_env: str) -> Vendor:
    if isinstance(fake, FakeJira):
        env = jira_env(fake, lag=float(extra_env.pop("JIRA_SEARCH_LAG_SECONDS", "0.5")))
        return Vendor(name, JiraWorker, fake, env | extra_env, {"method": "POST", "path": r"^/rest/api/3/issue$"})
    if isinstance(fake, FakeSlack):
        create = {"method": "POST", "path": r"^/chat\.postMessage$"}
        return Vendor(name, SlackWorker, fake, slack_env(fake) | extra_env, create)
    assert isinstance(fake, FakeZendesk)
    create = {"method": "POST", "path": r"^/api/v2/tickets\.json$"}
    return Vendor(name, ZendeskWorker, fake, zendesk_env(fake) | extra_env, create)


@pytest.fixture(params=WORKERS)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    fake = request.getfixturevalue(f"fake_{request.param}")
    return make_vendor(request.param, fake, WORKER_CREATE_GRACE_SECONDS="0.5")


def process_env(nats_url: str, vendor_env: Mapping[str, str], **overrides: str) -> dict[str, str]:
    """The environment of `python -m services.workers NAME`: fast test timings, JSON logs."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("JIRA_", "SLACK_", "ZENDESK_", "WORKER_"))}
    return (
        inherited
        | {
            "NATS_URL": nats_url,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
            "WORKER_FETCH_TIMEOUT_SECONDS": "0.5",
            "WORKER_RETRY_BASE_SECONDS": "0.1",
            "WORKER_RETRY_MAX_SECONDS": "1",
            "WORKER_LEASE_SECONDS": "1",
            "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
            "HEALTH_HOST": "127.0.0.1",
            "HEALTH_PORT": str(free_port()),
        }
        | dict(vendor_env)
        | overrides
    )


StartProcess = Callable[[str, Mapping[str, str]], Awaitable[Process]]


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
            async with httpx.AsyncClient() as client:
                try:
                    return (await client.get(url, timeout=1)).status_code == 200
                except httpx.HTTPError:
                    return False

        await eventually(ready, timeout=30, what=f"worker {name} to be ready")
        return process

    yield start
    for process in started:
        process.stop()
