"""Retries, lost answers and permanent failures: one outside object per incident, errors in KV."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from nats.js import JetStreamContext

from services.workers.jira.worker import JiraWorker
from services.workers.metrics import Outcome
from services.workers.slack.worker import SlackWorker
from services.workers.zendesk.worker import ZendeskWorker
from shared.events import STREAM
from shared.jetstream import error_key, refs_bucket
from shared.records import ErrorRecord
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.helpers import FAST, StartWorker, load_record, settled
from tests.integration.workers.vendors import Vendor, jira_env, make_vendor, slack_env, zendesk_env
from tests.support.polling import eventually


async def read_error(js: JetStreamContext, worker: str, seq: int) -> ErrorRecord:
    kv = await js.key_value(refs_bucket(worker))
    entry = await kv.get(error_key(seq))
    return msgspec.json.decode(entry.value or b"", type=ErrorRecord)


def tagged(posts: list[str], tag: str) -> int:
    return sum(tag in p for p in posts)


async def test_bursts_of_5xx_and_429_leave_one_object_and_each_comment_once(
    js: JetStreamContext, vendor: Vendor, start_worker: StartWorker
) -> None:
    running = await start_worker(vendor.factory, vendor.env)
    vendor.fake.fail_next(2, 500, **vendor.create)
    vendor.fake.rate_limit_next(3, retry_after=0.1)
    vendor.fake.fail_next(2, 503)
    feed = IncidentFeed()
    for event in (feed.create("disk full"), feed.comment(1, "first"), feed.comment(1, "second")):
        await publish(js, event)

    await settled(js, vendor.name)
    assert vendor.objects(1) == 1
    posts = vendor.posts(1)
    assert tagged(posts, "[incident-1 #1]") == 1 and tagged(posts, "[incident-1 #2]") == 1
    assert running.runner.metrics.events[Outcome.RETRIED] >= 7


async def test_a_create_whose_answer_is_lost_is_not_repeated(
    js: JetStreamContext, vendor: Vendor, start_worker: StartWorker
) -> None:
    """The vendor creates the object after our client gave up: the retry must find it, not make another."""
    env = vendor.env | {"WORKER_CREATE_GRACE_SECONDS": "3"}
    running = await start_worker(vendor.factory, env, http_timeout=0.5)
    vendor.fake.slow_next(1, 1.2, **vendor.create)
    if isinstance(vendor.fake, FakeJira):
        vendor.fake.search_lag = 0.5
    feed = IncidentFeed()
    await publish(js, feed.create("payments degraded"))
    await publish(js, feed.comment(1, "provider paged"))

    await settled(js, vendor.name)
    assert vendor.creates() == 1
    assert vendor.objects(1) == 1
    assert tagged(vendor.posts(1), "[incident-1 #1]") == 1
    assert running.runner.metrics.events[Outcome.RETRIED] >= 1


async def test_a_4xx_terminates_the_event_and_records_why(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    running = await start_worker(JiraWorker, jira_env(fake_jira))
    fake_jira.fail_next(1, 400, {"errorMessages": ["Field 'labels' cannot be set."]}, method="POST", path=r"/issue$")
    seq = await publish(js, IncidentFeed().create("cannot be filed"))

    await settled(js, "jira")
    info = await js.consumer_info(STREAM, "jira")
    assert info.num_redelivered == 0
    error = await read_error(js, "jira", seq)
    assert error.worker == "jira" and error.deliveries == 1
    assert "400" in error.error and "cannot be set" in error.error
    assert fake_jira.count("POST", r"/issue$") == 1 and fake_jira.with_label("incident-1") == []
    assert running.runner.metrics.events[Outcome.FAILED] == 1
    record = await load_record(js, "jira", 1)
    assert record is not None and record.pending is None and record.lease is None


async def test_retryable_errors_are_retried_until_the_budget_is_spent_then_terminated(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    """No count of deliveries ends the retries: the time since the event was stored does."""
    budget = 3.0
    running = await start_worker(JiraWorker, jira_env(fake_jira), msgspec.structs.replace(FAST, retry_budget=budget))
    fake_jira.fail_next(1000, 503, {"errorMessages": ["maintenance"]})
    seq = await publish(js, IncidentFeed().create("during maintenance"))
    stored = (await js.get_msg(STREAM, seq=seq)).time

    await settled(js, "jira", timeout=20)
    error = await read_error(js, "jira", seq)
    assert error.error.startswith(f"retry budget of {budget:g} s spent") and "503" in error.error, error
    assert error.worker == "jira" and error.deliveries > 1
    assert stored is not None and (datetime.now(UTC) - stored).total_seconds() >= budget
    assert running.runner.metrics.events[Outcome.DEAD_LETTERED] == 1
    assert running.runner.metrics.events[Outcome.RETRIED] == error.deliveries - 1
    assert running.runner.metrics.events[Outcome.FAILED] == 0


async def test_an_undecodable_event_is_terminated_with_its_error(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    await start_worker(JiraWorker, jira_env(fake_jira))
    ack = await js.publish("incident.created", b'{"specversion": "1.0", "id": 7')
    await settled(js, "jira")
    error = await read_error(js, "jira", ack.seq)
    assert error.error.startswith("undecodable event") and error.deliveries == 1
    assert fake_jira.requests == []


async def test_slack_ok_false_is_retried_or_terminated_by_its_error_code(
    js: JetStreamContext, fake_slack: FakeSlack, start_worker: StartWorker
) -> None:
    # internal_error may come after the message was posted: the worker waits out the grace first.
    running = await start_worker(SlackWorker, slack_env(fake_slack) | {"WORKER_CREATE_GRACE_SECONDS": "0.3"})
    fake_slack.error_next(2, "internal_error", path=r"postMessage")
    feed = IncidentFeed()
    await publish(js, feed.create("queue backlog"))
    await settled(js, "slack")
    assert len(fake_slack.roots_for(1)) == 1
    assert running.runner.metrics.events[Outcome.RETRIED] >= 2
    assert running.runner.metrics.events[Outcome.FAILED] == 0

    fake_slack.error_next(1, "channel_not_found", path=r"postMessage")
    seq = await publish(js, feed.comment(1, "draining"))
    await settled(js, "slack")
    error = await read_error(js, "slack", seq)
    assert "channel_not_found" in error.error
    assert running.runner.metrics.events[Outcome.FAILED] == 1


async def test_every_vendor_rejects_bad_credentials_permanently(
    js: JetStreamContext, vendor: Vendor, start_worker: StartWorker
) -> None:
    secret = {"jira": "JIRA_API_TOKEN", "slack": "SLACK_BOT_TOKEN", "zendesk": "ZENDESK_API_TOKEN"}[vendor.name]
    running = await start_worker(vendor.factory, vendor.env | {secret: "wrong"})
    seq = await publish(js, IncidentFeed().create("auth check"))
    await settled(js, vendor.name)
    assert running.runner.metrics.events[Outcome.FAILED] == 1
    error = await read_error(js, vendor.name, seq)
    assert "401" in error.error or "invalid_auth" in error.error
    assert vendor.objects(1) == 0


def test_make_vendor_keeps_env_overrides(fake_jira: FakeJira) -> None:
    vendor = make_vendor("jira", fake_jira, JIRA_SEARCH_LAG_SECONDS="7", WORKER_CREATE_GRACE_SECONDS="1")
    assert vendor.env["JIRA_SEARCH_LAG_SECONDS"] == "7.0" and vendor.env["WORKER_CREATE_GRACE_SECONDS"] == "1"


POST_PATHS = {
    "jira": {"method": "POST", "path": r"/comment$"},
    "slack": {"method": "POST", "path": r"chat\.postMessage$"},
    "zendesk": {"method": "PUT", "path": r"^/api/v2/tickets/\d+\.json$"},
}


async def test_a_comment_whose_answer_is_lost_is_not_repeated(
    js: JetStreamContext, vendor: Vendor, start_worker: StartWorker
) -> None:
    """The vendor stores the comment after our client gave up: the retry must wait for it, not post another."""
    env = vendor.env | {"WORKER_CREATE_GRACE_SECONDS": "4"}
    await start_worker(vendor.factory, env, http_timeout=0.5)
    feed = IncidentFeed()
    await publish(js, feed.create("queue backing up"))
    await settled(js, vendor.name)
    # Lands 2.5 s after it was sent: well after the worker's timeout and its first retry.
    vendor.fake.slow_next(1, 2.5, **POST_PATHS[vendor.name])
    await publish(js, feed.comment(1, "scaling consumers"))

    await settled(js, vendor.name)
    await eventually(lambda: _idle(vendor), what="the late answer to land")
    assert vendor.objects(1) == 1
    assert tagged(vendor.posts(1), "[incident-1 #1]") == 1


async def _idle(vendor: Vendor) -> bool:
    return bool(vendor.fake.idle())


async def test_an_object_found_after_a_lost_create_is_brought_up_to_date(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    """The issue lands late with the first message; a later event finds it and must push the current one."""
    await start_worker(JiraWorker, jira_env(fake_jira, lag=0) | {"WORKER_CREATE_GRACE_SECONDS": "2"}, http_timeout=0.5)
    fake_jira.slow_next(1, 1.2, method="POST", path=r"^/rest/api/3/issue$")
    feed = IncidentFeed()
    await publish(js, feed.create("first wording"))
    await publish(js, feed.edit(1, "second wording"))
    await publish(js, feed.resolve(1))

    await settled(js, "jira")
    await eventually(lambda: _idle_fake(fake_jira), what="the late create to land")
    issue = fake_jira.only(1)
    assert "second wording" in issue.summary
    assert issue.status == "Done"


async def _idle_fake(fake: FakeJira) -> bool:
    return bool(fake.idle())


STATE_PATHS = {
    "jira": {"method": "POST", "path": r"/transitions$"},
    "slack": {"method": "POST", "path": r"chat\.update$"},
    "zendesk": {"method": "PUT", "path": r"^/api/v2/tickets/\d+\.json$"},
}


def shows_unresolved(vendor: Vendor) -> bool:
    if vendor.name == "jira":
        return bool(vendor.fake.only(1).status == "To Do")
    if vendor.name == "slack":
        return "Status: unresolved" in vendor.fake.only(1).text
    return bool(vendor.fake.only(1).status == "open")


async def test_a_status_change_that_lands_late_does_not_win_over_a_newer_one(
    js: JetStreamContext, vendor: Vendor, start_worker: StartWorker
) -> None:
    """ "Resolved" lands after our client gave up and after the incident was reopened: "open" must win."""
    await start_worker(vendor.factory, vendor.env | {"WORKER_CREATE_GRACE_SECONDS": "3"}, http_timeout=0.5)
    feed = IncidentFeed()
    await publish(js, feed.create("checkout errors"))
    await settled(js, vendor.name)
    vendor.fake.slow_next(1, 1.5, **STATE_PATHS[vendor.name])
    await publish(js, feed.resolve(1))
    await publish(js, feed.reopen(1))

    await settled(js, vendor.name)
    await eventually(lambda: _idle(vendor), what="the late status change to land")
    assert shows_unresolved(vendor)


async def test_a_deleted_incident_whose_last_update_failed_still_shows_deleted(
    js: JetStreamContext, fake_slack: FakeSlack, start_worker: StartWorker
) -> None:
    await start_worker(SlackWorker, slack_env(fake_slack) | {"WORKER_CREATE_GRACE_SECONDS": "1"})
    feed = IncidentFeed()
    await publish(js, feed.create("disk full"))
    await settled(js, "slack")
    fake_slack.error_next(1, "internal_error", path=r"chat\.update")
    await publish(js, feed.delete(1))

    await settled(js, "slack")
    assert "deleted" in fake_slack.only(1).text.lower()


async def test_a_zendesk_409_on_a_concurrent_update_is_retried(
    js: JetStreamContext, fake_zendesk: FakeZendesk, start_worker: StartWorker
) -> None:
    """Zendesk answers 409 when two updates of one ticket race, and expects the update to be sent again."""
    running = await start_worker(ZendeskWorker, zendesk_env(fake_zendesk))
    feed = IncidentFeed()
    await publish(js, feed.create("checkout errors"))
    await settled(js, "zendesk")
    conflict = {"error": "RecordInvalid", "description": "Ticket was updated concurrently"}
    fake_zendesk.fail_next(2, 409, conflict, method="PUT", path=r"^/api/v2/tickets/\d+\.json$")
    await publish(js, feed.comment(1, "rolled back"))

    await settled(js, "zendesk")
    assert tagged(fake_zendesk.only(1).comment_bodies(), "[incident-1 #1]") == 1
    assert running.runner.metrics.events[Outcome.FAILED] == 0
    assert running.runner.metrics.events[Outcome.RETRIED] >= 2


async def test_a_vendor_trickling_its_answer_holds_nothing_past_the_sync_deadline(
    js: JetStreamContext, vendor: Vendor, start_worker: StartWorker
) -> None:
    """Each byte comes well within the read timeout, the whole answer would take minutes: the deadline ends
    the call, its outcome is unknown, and the retry finds the object the call made instead of making another."""
    settings = msgspec.structs.replace(FAST, sync_timeout=2.0)
    running = await start_worker(vendor.factory, vendor.env, settings, http_timeout=5.0)
    vendor.fake.trickle_next(1, 1.0, **vendor.create)
    feed = IncidentFeed()
    await publish(js, feed.create("slow vendor"))
    await publish(js, feed.comment(1, "still slow"))

    await settled(js, vendor.name, timeout=30)
    assert vendor.creates() == 1
    assert vendor.objects(1) == 1
    assert tagged(vendor.posts(1), "[incident-1 #1]") == 1
    assert running.runner.metrics.events[Outcome.RETRIED] >= 1
    record = await load_record(js, vendor.name, 1)
    assert record is not None and record.pending is None and record.lease is None


async def test_a_jira_answering_301_applies_nothing_until_it_is_fixed(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    """A moved base URL: a comment and a resolve meet 301s. Neither counts as applied, nothing is
    dead-lettered, and once Jira answers again both arrive."""
    running = await start_worker(JiraWorker, jira_env(fake_jira))
    feed = IncidentFeed()
    await publish(js, feed.create("checkout is down"))
    await settled(js, "jira")
    key = fake_jira.only(1).key

    moved = "https://acme.atlassian.net/rest/api/3/"
    fake_jira.fail_next(100_000, 301, {}, headers={"Location": moved})
    before = len(fake_jira.requests)
    await publish(js, feed.comment(1, "rolling back the deploy"))
    await publish(js, feed.resolve(1))

    async def redirected_several_times() -> bool:
        return len(fake_jira.requests) - before >= 4

    await eventually(redirected_several_times, what="the worker to meet several 301s")
    record = await load_record(js, "jira", 1)
    assert record is not None and record.version == 1, "nothing past the create is recorded as applied"
    assert record.comments_synced == 0
    issue = fake_jira.only(1)
    assert issue.comment_texts() == [] and issue.status != "Done"
    assert running.runner.metrics.events[Outcome.FAILED] == 0
    assert running.runner.metrics.events[Outcome.RETRIED] >= 1

    fake_jira.clear_faults()
    await settled(js, "jira", timeout=30)
    issue = fake_jira.only(1)
    assert issue.key == key and issue.status == "Done"
    assert [t.splitlines()[0] for t in issue.comment_texts()] == ["rolling back the deploy"]
    record = await load_record(js, "jira", 1)
    assert record is not None and record.version == 3 and record.comments_synced == 1
    assert running.runner.metrics.events[Outcome.DEAD_LETTERED] == 0


class LastWritesFail:
    """The worker's real KV store, whose writes fail (a NATS node gone) from the final write of one incident
    version on: that one alone, or the release after it too. The sync's calls outside have been made."""

    def __init__(self, store: Any, version: int, *, release_too: bool) -> None:
        self.store = store
        self.version = version
        self.to_fail = 2 if release_too else 1
        self.failed = asyncio.Event()

    async def load(self, incident_id: int) -> Any:
        return await self.store.load(incident_id)

    async def save(self, record: Any, revision: int) -> int:
        final = record.version == self.version and record.lease is None
        if self.to_fail and (final or self.failed.is_set()):
            self.to_fail -= 1
            self.failed.set()
            raise TimeoutError("nats: timeout")
        return int(await self.store.save(record, revision))

    async def put_error(self, stream_seq: int, error: Any) -> None:
        await self.store.put_error(stream_seq, error)

    async def clear_error(self, stream_seq: int) -> None:
        await self.store.clear_error(stream_seq)


@pytest.mark.parametrize("release_too", [False, True], ids=["final-write-lost", "release-lost-too"])
async def test_a_status_set_outside_whose_record_write_failed_is_not_left_behind_by_a_reopen(
    js: JetStreamContext, vendor: Vendor, start_worker: StartWorker, release_too: bool
) -> None:
    """The resolve reaches the vendor, its record write fails; the incident is reopened before the retry.
    The retry must push "open" although the record from before the resolve already said unresolved."""
    running = await start_worker(vendor.factory, vendor.env)
    feed = IncidentFeed()
    await publish(js, feed.create("queue stuck"))
    await settled(js, vendor.name)

    async def processor_ready() -> bool:
        return running.runner.processor is not None

    await eventually(processor_ready, what="the runner's processor")
    processor = running.runner.processor
    assert processor is not None
    failing = LastWritesFail(processor.store, version=2, release_too=release_too)
    processor.store = failing  # type: ignore[assignment]
    processor.cache.clear()  # every pass reads the record from the store
    await publish(js, feed.resolve(1))
    await asyncio.wait_for(failing.failed.wait(), 30)
    assert not shows_unresolved(vendor)  # the resolve did reach the vendor
    await publish(js, feed.reopen(1))

    await settled(js, vendor.name, timeout=30)
    await eventually(lambda: _idle(vendor), what="the vendor to be idle")
    assert shows_unresolved(vendor)
    record = await load_record(js, vendor.name, 1)
    assert record is not None and record.version == 3 and record.status == "unresolved"
