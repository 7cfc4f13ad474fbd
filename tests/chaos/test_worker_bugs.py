"""Minimal reproductions of the worker bugs that the chaos run found (services/workers), kept as regression
tests. Fixed in 92068bc (lost answers of posts), 87a385e (order, refresh, late state calls) and 1c98b8f (found
objects); the chaos run reported each of them as duplicates, notes out of order, or a stale outside state.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.workers.base import WorkerFactory
from services.workers.httpclient import HttpClient
from services.workers.jira.worker import JiraWorker
from services.workers.records import IncidentRecord, Pending
from services.workers.runner import Runner
from services.workers.settings import RunnerSettings
from services.workers.slack.worker import SlackWorker
from services.workers.store import KvRecordStore, open_bucket
from services.workers.zendesk.api import subject
from services.workers.zendesk.worker import ZendeskWorker
from shared.events import ALL_SUBJECTS, STREAM
from shared.jetstream import incidents_stream_config, worker_consumer_config
from tests.chaos.oracle import NOTE_TAG
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.jira import FakeJira, Issue
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.support.polling import eventually
from tests.support.processes import NatsServer

SETTINGS = RunnerSettings(
    concurrency=4,
    fetch_batch=10,
    fetch_timeout=0.5,
    lease_ttl=3.0,
    retry_base=0.5,
    retry_max=1.0,
    shutdown_grace=2.0,
)


@pytest.fixture
async def js(nc: Client) -> JetStreamContext:
    context = nc.jetstream()
    await context.add_stream(incidents_stream_config())
    for worker in ("jira", "slack", "zendesk"):
        await context.add_consumer(STREAM, worker_consumer_config(worker, list(ALL_SUBJECTS), ack_wait=5.0))
    return context


@contextlib.asynccontextmanager
async def running(
    nats_server: NatsServer, factory: WorkerFactory, env: Mapping[str, str], http_timeout: float = 5.0
) -> AsyncIterator[Runner]:
    """One worker replica in this event loop, with its own NATS connection."""
    nc = await nats.connect(nats_server.url)
    client = HttpClient(timeout=http_timeout)
    context = nc.jetstream()
    worker = factory.from_env(env, client)
    runner = Runner(worker, context, KvRecordStore(await open_bucket(context, worker.name)), SETTINGS)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await eventually(lambda: _bound(runner, task), what="runner bound")
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await client.aclose()
        await nc.drain()


async def _bound(runner: Runner, task: asyncio.Task[None]) -> bool:
    assert not task.done(), "runner ended early"
    return runner.bound


async def settled(js: JetStreamContext, worker: str) -> None:
    async def probe() -> bool:
        last = (await js.stream_info(STREAM)).state.last_seq
        info = await js.consumer_info(STREAM, worker)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        assert (floor, info.num_pending, info.num_ack_pending) == (last, 0, 0)
        return True

    await eventually(probe, timeout=30, what=f"{worker} to settle")


def jira_env(fake: FakeJira) -> dict[str, str]:
    return {
        "JIRA_BASE_URL": fake.url,
        "JIRA_EMAIL": fake.email,
        "JIRA_API_TOKEN": fake.token,
        "JIRA_PROJECT_KEY": fake.project,
        "JIRA_SEARCH_LAG_SECONDS": "0.5",
        "WORKER_CREATE_GRACE_SECONDS": "3",  # longer than the late answer below takes to land
    }


def slack_env(fake: FakeSlack) -> dict[str, str]:
    return {
        "SLACK_API_URL": fake.url,
        "SLACK_BOT_TOKEN": fake.token,
        "SLACK_CHANNEL": fake.channel,
        "WORKER_CREATE_GRACE_SECONDS": "1",
    }


def note_tags(texts: list[str]) -> list[str]:
    return [m.group(0) for t in texts if (m := NOTE_TAG.search(t)) is not None]


async def test_a_comment_whose_answer_comes_after_the_timeout_is_posted_once(
    js: JetStreamContext, nats_server: NatsServer, fake_jira: FakeJira
) -> None:
    """Was a bug: a post whose outcome is unknown (timeout, or the worker killed mid-request) is re-posted at
    once when `has_post` does not see it yet; the first one lands later and the comment is there twice.
    Creates wait `create_grace` for exactly this; posts do not."""
    applied: list[str] = []

    def on_comment(issue: Issue, text: str) -> None:
        applied.append(text)

    fake_jira.on_comment = on_comment
    fake_jira.slow_next(1, 1.5, method="POST", path=r"/comment$")  # Jira answers after our 0.5 s timeout
    feed = IncidentFeed()
    async with running(nats_server, JiraWorker, jira_env(fake_jira), http_timeout=0.5):
        await publish(js, feed.create("api 500s"))
        await publish(js, feed.comment(1, "rolling back"))
        await settled(js, "jira")

        async def every_post_landed() -> bool:
            return len(applied) == fake_jira.count("POST", r"/comment$")

        await eventually(every_post_landed, timeout=10, what="the late comment to land")
    texts = fake_jira.only(1).comment_texts()
    assert sum("[incident-1 #1]" in t for t in texts) == 1, texts


async def test_an_older_event_retried_after_a_newer_one_started_does_not_undo_it(
    js: JetStreamContext, nats_server: NatsServer, fake_slack: FakeSlack
) -> None:
    """Was a bug: while v3 waits for its redelivery (429) the runner goes on with v4; when v4 fails half-way, the record
    is still at v2, so v3 is not stale when it comes back: it applies the older snapshot over v4's changes
    (a "message changed" note back to the old message) and `finish` clears `posted`, so v4 posts its note
    again. Per-incident order is broken and the thread gets the same note twice."""
    feed = IncidentFeed()
    async with running(nats_server, SlackWorker, slack_env(fake_slack)):
        await publish(js, feed.create("queue stuck"))
        await publish(js, feed.acknowledge(1))
        await settled(js, "slack")
        # v3's note is refused (surely not posted, so nothing is waited out), v4 fails after its notes.
        fake_slack.rate_limit_next(1, retry_after=0.3, path=r"chat\.postMessage")
        fake_slack.error_next(1, "internal_error", path=r"chat\.update")
        await publish(js, feed.unacknowledge(1))
        await publish(js, feed.edit(1, "queue stuck on shard 4"))
        await settled(js, "slack")
    tags = note_tags(fake_slack.replies(fake_slack.only(1).ts))
    twice = [tag for tag, count in Counter(tags).items() if count > 1]
    versions = [int(re.findall(r" v(\d+) ", tag)[0]) for tag in tags]
    assert not twice and versions == sorted(versions), tags


async def test_the_slack_root_is_refreshed_when_the_update_failed_after_progress_was_saved(
    js: JetStreamContext, nats_server: NatsServer, fake_slack: FakeSlack
) -> None:
    """Was a bug: one sync applies an acknowledgement and a comment (a snapshot that covers both, e.g. after an
    earlier event was skipped); chat.update fails at the end. The comment's pending marker had saved the
    record with `acknowledged: yes`, so the retry sees nothing left to change and never calls chat.update:
    the root message keeps showing `Acknowledged: no` for good."""
    feed = IncidentFeed()
    async with running(nats_server, SlackWorker, slack_env(fake_slack)):
        await publish(js, feed.create("latency"))
        await settled(js, "slack")
        feed.acknowledge(1)  # v2 is never delivered to this worker; v3's snapshot carries it
        fake_slack.error_next(1, "internal_error", path=r"chat\.update")
        await publish(js, feed.comment(1, "paging the db team"))
        await settled(js, "slack")
    root = fake_slack.only(1)
    assert "Acknowledged: yes" in root.text, root.text


async def test_a_state_update_whose_answer_came_late_does_not_overwrite_a_newer_one(
    js: JetStreamContext, nats_server: NatsServer, fake_slack: FakeSlack
) -> None:
    """Was a bug: only creates and posts are waited out when their outcome is unknown. The chat.update that shows
    "resolved" times out and lands 1.5 s later, after the next event's chat.update showed "unresolved" (the
    incident was reopened): the root message shows "resolved" for good. The same holds for Jira transitions and
    Zendesk status updates: after a state call of unknown outcome, the incident's next call has to wait out
    the grace and then push the current state again."""
    feed = IncidentFeed()
    async with running(nats_server, SlackWorker, slack_env(fake_slack) | {"WORKER_CREATE_GRACE_SECONDS": "3"}, 0.5):
        await publish(js, feed.create("checkout errors"))
        await settled(js, "slack")
        fake_slack.slow_next(1, 1.5, path=r"chat\.update")  # applied after the worker gave up on it
        await publish(js, feed.resolve(1))
        await publish(js, feed.reopen(1))
        await settled(js, "slack")

        async def every_update_landed() -> bool:
            return fake_slack.only(1).edits == fake_slack.count("POST", r"chat\.update")

        await eventually(every_update_landed, timeout=10, what="the late chat.update to land")
    assert "Status: unresolved" in fake_slack.only(1).text, fake_slack.only(1).text


async def test_an_object_found_from_an_earlier_attempt_gets_the_current_message(
    js: JetStreamContext, nats_server: NatsServer, fake_zendesk: FakeZendesk
) -> None:
    """Was a bug: `_find_or_create` recorded a found object as showing the event's message, but an object found
    again was made by an earlier attempt (its answer lost to a timeout or a crash) from an older snapshot.
    When the message was edited in between, the subject (Jira: the summary) stays the old one for good.
    Here v1's create landed after the worker gave up (its pending marker stays); v2, an edit, is the first sync
    to finish."""
    feed = IncidentFeed()
    created = feed.create("disk full on db-1")
    edited = feed.edit(1, "disk full on db-1 and db-2")
    env = {"ZENDESK_BASE_URL": fake_zendesk.url, "ZENDESK_EMAIL": fake_zendesk.email}
    env |= {"ZENDESK_API_TOKEN": fake_zendesk.token, "WORKER_CREATE_GRACE_SECONDS": "1"}
    async with running(nats_server, ZendeskWorker, env) as runner:
        await runner.worker.sync(created, IncidentRecord(incident_id=1), NoSave())  # the landed create
        assert len(fake_zendesk.for_incident(1)) == 1
        marker = Pending(op="create", since=time.time() - 2)  # written before that create; its answer was lost
        await runner.store.save(IncidentRecord(incident_id=1, pending=marker), 0)
        await publish(js, edited)
        await settled(js, "zendesk")
    ticket = fake_zendesk.only(1)
    assert ticket.subject == subject(edited.data.incident), ticket.subject


class NoSave:
    """A SyncContext for calling a worker directly: progress is not kept."""

    async def save(self, record: IncidentRecord) -> IncidentRecord:
        return record
