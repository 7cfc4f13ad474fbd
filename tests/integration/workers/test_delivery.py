"""Delivery semantics: per-incident order under concurrency, stale and late events, redrives, leases."""

from __future__ import annotations

import random
import time

import msgspec
from nats.js import JetStreamContext

from services.workers.jira.worker import JiraWorker
from services.workers.lease import LeaseKeeper
from services.workers.metrics import Outcome
from services.workers.store import KvRecordStore, open_bucket
from shared.events import REDRIVE_HEADER, encode_event
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.jira import FakeJira
from tests.integration.workers.helpers import FAST, StartWorker, load_record, settled
from tests.integration.workers.vendors import jira_env
from tests.support.polling import eventually


def user_comments(fake: FakeJira, incident_id: int) -> list[str]:
    """The incident's comments as Jira shows them, without our markers and notes."""
    texts = fake.only(incident_id).comment_texts()
    return [t.splitlines()[0] for t in texts if f"[incident-{incident_id} #" in t]


async def test_each_incident_keeps_its_comment_order_under_concurrency_and_failures(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    running = await start_worker(JiraWorker, jira_env(fake_jira) | {"WORKER_CREATE_GRACE_SECONDS": "0.3"})
    rng = random.Random(7)
    fake_jira.slow_next(60, 0.02)
    fake_jira.fail_next(6, 500, path=r"/comment$", method="POST")
    feed = IncidentFeed()
    incidents, comments = 12, 8
    events = [feed.create(f"incident {i}") for i in range(1, incidents + 1)]
    events += [feed.comment(i, f"step {n} of {i}") for n in range(1, comments + 1) for i in range(1, incidents + 1)]
    # Interleave incidents while keeping each incident's own events in order, as the API emits them.
    rng.shuffle(events)
    events.sort(key=lambda e: e.incidentversion)
    for event in events:
        await publish(js, event)

    await settled(js, "jira", timeout=40)
    for i in range(1, incidents + 1):
        assert user_comments(fake_jira, i) == [f"step {n} of {i}" for n in range(1, comments + 1)]
    assert running.runner.metrics.events[Outcome.RETRIED] >= 6


async def test_an_old_event_after_a_newer_one_changes_nothing(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    running = await start_worker(JiraWorker, jira_env(fake_jira))
    feed = IncidentFeed()
    created, first, second = feed.create("cache stampede"), feed.comment(1, "a"), feed.comment(1, "b")
    for event in (created, first, second):
        await publish(js, event)
    await settled(js, "jira")
    before = len(fake_jira.requests)

    await publish(js, msgspec.structs.replace(first, id="redelivered-copy"))
    await settled(js, "jira")
    assert len(fake_jira.requests) == before
    assert user_comments(fake_jira, 1) == ["a", "b"]
    assert running.runner.metrics.events[Outcome.SKIPPED] == 1


async def test_a_late_subscriber_builds_the_object_from_the_snapshot(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    """Only the third event reaches the worker: the issue is created and both comments posted, in order."""
    await start_worker(JiraWorker, jira_env(fake_jira))
    feed = IncidentFeed()
    feed.create("late subscriber")
    feed.comment(1, "one")
    feed.resolve(1)
    await publish(js, feed.comment(1, "two"))
    await settled(js, "jira")
    issue = fake_jira.only(1)
    assert user_comments(fake_jira, 1) == ["one", "two"]
    assert issue.status == "Done"


async def test_a_redrive_for_another_worker_is_acked_and_skipped(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    running = await start_worker(JiraWorker, jira_env(fake_jira))
    event = IncidentFeed().create("redriven")
    await js.publish(event.nats_subject, encode_event(event), headers={REDRIVE_HEADER: "slack"})
    await settled(js, "jira")
    assert fake_jira.requests == []
    assert running.runner.metrics.events[Outcome.SKIPPED] == 1

    await js.publish(event.nats_subject, encode_event(event), headers={REDRIVE_HEADER: "jira", "Nats-Msg-Id": "r2"})
    await settled(js, "jira")
    assert len(fake_jira.with_label("incident-1")) == 1


async def test_a_slot_is_free_while_an_incident_waits_for_another_replicas_lease(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    """One concurrency slot: incident 1 waits (parked) for a lease held elsewhere while incident 2 goes on."""
    store = KvRecordStore(await open_bucket(js, "jira"))
    other = LeaseKeeper(store, "other-replica", ttl=30)
    assert await other.acquire(1, 1, wait=0) is not None
    running = await start_worker(JiraWorker, jira_env(fake_jira), msgspec.structs.replace(FAST, concurrency=1))
    feed = IncidentFeed()
    await publish(js, feed.create("contended"))
    await publish(js, feed.create("free"))

    async def second_created() -> bool:
        return len(fake_jira.with_label("incident-2")) == 1

    await eventually(second_created, what="incident 2 to be synced while incident 1 waits")
    assert fake_jira.with_label("incident-1") == []
    assert running.runner.metrics.events[Outcome.RETRIED] == 0  # waiting is no failure
    await other.release()
    await settled(js, "jira")
    assert len(fake_jira.with_label("incident-1")) == 1
    assert running.runner.metrics.events[Outcome.RETRIED] == 0


async def test_an_expired_lease_of_a_dead_replica_is_taken_over(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    """...after the grace: calls the dead replica had in flight when its lease lapsed may still land."""
    store = KvRecordStore(await open_bucket(js, "jira"))
    dead = LeaseKeeper(store, "dead-replica", ttl=1.0)
    assert await dead.acquire(1, 1, wait=0) is not None
    started = time.monotonic()
    await start_worker(JiraWorker, jira_env(fake_jira) | {"WORKER_CREATE_GRACE_SECONDS": "1.5"})
    await publish(js, IncidentFeed().create("orphaned lease"))
    await settled(js, "jira")
    assert len(fake_jira.with_label("incident-1")) == 1
    assert time.monotonic() - started >= 1.0 + 1.5  # the lease, then the grace from its lapse
    record = await load_record(js, "jira", 1)
    assert record is not None and record.lease is None and record.version == 1


async def test_two_replicas_share_the_consumer_without_duplicates(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    settings = msgspec.structs.replace(FAST, fetch_batch=4)
    env = jira_env(fake_jira) | {"WORKER_CREATE_GRACE_SECONDS": "0.3"}
    first = await start_worker(JiraWorker, env, settings, owner="replica-a")
    second = await start_worker(JiraWorker, env, settings, owner="replica-b")
    fake_jira.slow_next(200, 0.01)
    feed = IncidentFeed()
    incidents = 20
    events = [feed.create(f"shared {i}") for i in range(1, incidents + 1)]
    events += [feed.acknowledge(i) for i in range(1, incidents + 1)]
    events += [feed.comment(i, f"note {n}") for n in (1, 2, 3) for i in range(1, incidents + 1)]
    events += [feed.resolve(i) for i in range(1, incidents + 1)]
    for event in events:
        await publish(js, event)

    await settled(js, "jira", timeout=40)
    for i in range(1, incidents + 1):
        assert user_comments(fake_jira, i) == ["note 1", "note 2", "note 3"]
        assert fake_jira.only(i).status == "Done"
    assert fake_jira.count("POST", r"^/rest/api/3/issue$") == incidents
    done = [r.runner.metrics.events[Outcome.PROCESSED] for r in (first, second)]
    assert all(n > 0 for n in done), done
    skipped = sum(r.runner.metrics.events[Outcome.SKIPPED] for r in (first, second))
    assert sum(done) + skipped >= len(events)


async def test_a_sync_slower_than_ack_wait_is_kept_in_progress_not_redelivered(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    running = await start_worker(JiraWorker, jira_env(fake_jira))
    fake_jira.slow_next(1, 3.5, method="POST", path=r"^/rest/api/3/issue$")  # AckWait is 2 s here
    await publish(js, IncidentFeed().create("slow create"))
    await settled(js, "jira", timeout=20)
    assert len(fake_jira.with_label("incident-1")) == 1
    # A redelivery would have shown up as a second, skipped (stale) delivery.
    assert running.runner.metrics.events[Outcome.PROCESSED] == 1
    assert running.runner.metrics.events[Outcome.SKIPPED] == 0
    assert running.runner.metrics.latency_count == 1


async def test_an_old_redelivery_queued_behind_newer_events_does_not_get_them_acked_unapplied(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    """Was a bug of the coalesced pass: the last message queued decided what was stale, so an old event
    coming back (after a pause or a NATS restart) behind newer ones got them acked without applying them."""
    await start_worker(JiraWorker, jira_env(fake_jira))
    feed = IncidentFeed()
    created = feed.create("replica lag")
    await publish(js, created)
    await settled(js, "jira")
    fake_jira.slow_next(1, 2.0, method="POST", path=r"/comment$")  # the incident stays busy with comment 1
    await publish(js, feed.comment(1, "first"))

    async def busy() -> bool:
        return fake_jira.count("POST", r"/comment$") == 1

    await eventually(busy, what="the first comment to be on its way")
    await publish(js, feed.comment(1, "second"))
    await publish(js, created, headers={"Nats-Msg-Id": "the same event, redelivered"})
    await settled(js, "jira")
    texts = fake_jira.only(1).comment_texts()
    assert [sum(f"[incident-1 #{n}]" in t for t in texts) for n in (1, 2)] == [1, 1], texts
