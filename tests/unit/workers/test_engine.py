"""The state-based sync: diff snapshot against record, guard every call that is unsafe to repeat."""

from __future__ import annotations

import time
from typing import ClassVar

import msgspec
import pytest

from services.workers.engine import NOTE_TEXT, ReconcilingWorker
from services.workers.errors import RateLimited, RetryableError
from services.workers.lease import LeaseKeeper
from services.workers.records import ExternalRef, IncidentRecord, Lease, Pending
from services.workers.store import MemoryRecordStore
from shared.events import CloudEvent, IncidentSnapshot
from tests.fakes.incidents import IncidentFeed


class Outside(ReconcilingWorker):
    """An outside system in memory that implements the real operations and records them."""

    name: ClassVar[str] = "memory"
    note_kinds: ClassVar[frozenset[str]] = frozenset(NOTE_TEXT)

    def __init__(self) -> None:
        self.objects: dict[int, list[str]] = {}
        self.calls: list[str] = []
        self.status: dict[int, str] = {}
        self.fail_create: Exception | None = None
        self.dry_run = False

    async def find(self, incident: IncidentSnapshot) -> ExternalRef | None:
        self.calls.append("find")
        return ExternalRef(id=str(incident.id)) if incident.id in self.objects else None

    async def create(self, incident: IncidentSnapshot) -> ExternalRef:
        self.calls.append("create")
        if self.fail_create is not None:
            raise self.fail_create
        self.objects[incident.id] = []
        return ExternalRef(id=str(incident.id))

    async def post(self, ref: ExternalRef, text: str, tag: str) -> None:
        self.calls.append(f"post {tag}")
        self.objects[int(ref.id)].append(f"{text} {tag}")

    async def has_post(self, ref: ExternalRef, tag: str) -> bool:
        self.calls.append(f"has_post {tag}")
        return any(tag in p for p in self.objects[int(ref.id)])

    async def set_status(self, ref: ExternalRef, status: str) -> None:
        self.calls.append(f"status {status}")
        self.status[int(ref.id)] = status

    async def close(self, ref: ExternalRef) -> None:
        self.calls.append("close")


async def apply(outside: Outside, store: MemoryRecordStore, event: CloudEvent) -> IncidentRecord:
    keeper = LeaseKeeper(store, "me", ttl=30)
    record = await keeper.acquire(event.incident_id, event.incidentversion, wait=0)
    assert record is not None
    try:
        record = await outside.sync(event, record, keeper)
    except BaseException:
        await keeper.release()
        raise
    await keeper.finish(record, event.incidentversion)
    stored, _ = await store.load(event.incident_id)
    assert stored is not None
    return stored


async def test_skipped_events_are_covered_by_the_next_snapshot_in_order() -> None:
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    await apply(outside, store, feed.create("m"))
    feed.comment(1, "a")
    feed.acknowledge(1)
    feed.comment(1, "b")
    record = await apply(outside, store, feed.comment(1, "c"))
    # Comments keep the incident's order; the acknowledgement note comes with the event that saw it.
    comments = [p for p in outside.objects[1] if "#" in p]
    assert comments == ["a [incident-1 #1]", "b [incident-1 #2]", "c [incident-1 #3]"]
    assert outside.objects[1].count("Incident acknowledged. [incident-1 v5 acknowledged]") == 1
    assert (record.version, record.comments_synced, record.acknowledged) == (5, 3, "yes")


async def test_a_pending_comment_found_outside_is_not_posted_again() -> None:
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    await apply(outside, store, feed.create("m"))
    outside.objects[1].append("a [incident-1 #1]")  # posted, then the worker died before recording it
    record, revision = await store.load(1)
    assert record is not None
    pending = Pending(op="comment", since=time.time(), tag="[incident-1 #1]", index=1)
    await store.save(IncidentRecord(incident_id=1, ref=record.ref, version=1, message="m", pending=pending), revision)

    record = await apply(outside, store, feed.comment(1, "a"))
    assert outside.objects[1] == ["a [incident-1 #1]"]
    assert record.comments_synced == 1 and record.pending is None


async def test_a_pending_create_not_found_waits_out_the_grace_then_creates() -> None:
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    outside.create_grace = 60
    await store.save(IncidentRecord(incident_id=1, pending=Pending(op="create", since=time.time() - 10)), 0)
    event = feed.create("m")
    with pytest.raises(RetryableError, match="may not be visible yet") as caught:
        await apply(outside, store, event)
    assert caught.value.delay is not None and 1 <= caught.value.delay <= 50
    assert "create" not in outside.calls

    record, revision = await store.load(1)
    assert record is not None and record.pending is not None
    await store.save(IncidentRecord(incident_id=1, pending=Pending(op="create", since=time.time() - 61)), revision)
    await apply(outside, store, event)
    assert outside.calls.count("create") == 1


async def test_a_create_that_surely_failed_clears_the_marker_and_one_that_may_have_landed_keeps_it() -> None:
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    event = feed.create("m")
    outside.fail_create = RateLimited("slow down", 1.0)
    with pytest.raises(RateLimited):
        await apply(outside, store, event)
    record, _ = await store.load(1)
    assert record is not None and record.pending is None

    outside.fail_create = RetryableError("502 from the gateway")
    with pytest.raises(RetryableError):
        await apply(outside, store, event)
    record, _ = await store.load(1)
    assert record is not None and record.pending is not None and record.pending.op == "create"


async def test_an_object_found_after_a_create_of_unknown_outcome_is_checked_before_posting() -> None:
    """The create landed (and a comment) but the answer was lost: posts already there are not repeated."""
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    await store.save(IncidentRecord(incident_id=1, pending=Pending(op="create", since=time.time() - 60)), 0)
    feed.create("m")
    feed.comment(1, "a")
    outside.objects[1] = ["a [incident-1 #1]"]
    await apply(outside, store, feed.comment(1, "b"))
    assert outside.objects[1] == ["a [incident-1 #1]", "b [incident-1 #2]"]
    assert outside.calls[0] == "find"
    assert "create" not in outside.calls and "has_post [incident-1 #1]" in outside.calls


async def test_a_create_is_never_searched_for_when_no_create_was_attempted() -> None:
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    await apply(outside, store, feed.create("m"))
    await apply(outside, store, feed.comment(1, "a"))
    assert outside.calls == ["create", "post [incident-1 #1]"]


async def test_an_incident_deleted_before_anything_was_created_creates_nothing() -> None:
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    feed.create("m")
    record = await apply(outside, store, feed.delete(1))
    assert record.deleted and outside.calls == []


async def test_status_changes_and_delete_are_pushed_once() -> None:
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    await apply(outside, store, feed.create("m"))
    await apply(outside, store, feed.resolve(1))
    await apply(outside, store, feed.reopen(1))
    record = await apply(outside, store, feed.delete(1))
    assert [c for c in outside.calls if c.startswith(("status", "close"))] == [
        "status resolved",
        "status unresolved",
        "close",
    ]
    assert record.deleted and record.status == "unresolved"
    calls = len(outside.calls)
    feed.incidents[1].comments.append("after the end")
    feed.incidents[1].version += 1
    record = await apply(outside, store, feed.unacknowledge(1))
    assert len(outside.calls) == calls and record.version == 6


async def test_coalesced_events_post_every_comment_and_note_once_in_order_with_one_state_call() -> None:
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    events = [
        feed.create("m"),
        feed.comment(1, "a"),
        feed.acknowledge(1),
        feed.comment(1, "b"),
        feed.unacknowledge(1),
        feed.comment(1, "c"),
        feed.resolve(1),
    ]
    keeper = LeaseKeeper(store, "me", ttl=30)
    record = await keeper.acquire(1, events[-1].incidentversion, wait=0)
    assert record is not None
    record = await outside.sync_all(events, record, keeper)
    await keeper.finish(record, events[-1].incidentversion)
    assert outside.objects[1] == [
        "a [incident-1 #1]",
        "Incident acknowledged. [incident-1 v3 acknowledged]",
        "b [incident-1 #2]",
        "Incident no longer acknowledged. [incident-1 v5 unacknowledged]",
        "c [incident-1 #3]",
        "Incident resolved. [incident-1 v7 resolved]",
    ]
    # One create, no search, the status pushed once for the whole batch.
    assert [c for c in outside.calls if not c.startswith("post")] == ["create", "status resolved"]
    stored, _ = await store.load(1)
    assert stored is not None and (stored.version, stored.comments_synced, stored.status) == (7, 3, "resolved")


@pytest.mark.parametrize(
    "left_pending",
    [
        Pending(op="comment", since=0.0, tag="[incident-1 #1]", index=1),
        Pending(op="note", since=0.0, tag="[incident-1 v3 resolved]"),
        Pending(op="state", since=0.0),
    ],
    ids=["comment", "note", "older-state"],
)
async def test_a_replica_taking_over_waits_for_state_calls_in_flight_whatever_was_pending(
    left_pending: Pending,
) -> None:
    """The storm soak's wrong state: a replica posted a comment (its marker still in KV), sent "resolved",
    and died or froze with that call in flight. The replica that took the lapsed lease saw the comment marker,
    found the comment, and pushed the newer state at once; the old call landed after it."""
    outside, store, feed = Outside(), MemoryRecordStore(), IncidentFeed()
    outside.create_grace = 60
    await apply(outside, store, feed.create("m"))
    outside.objects[1].append("a [incident-1 #1]")  # the dead replica's comment did land
    comment, resolve, reopen = feed.comment(1, "a"), feed.resolve(1), feed.reopen(1)
    record, revision = await store.load(1)
    assert record is not None
    lapsed = time.time() - 1
    dead = msgspec.structs.replace(
        record,
        comments_synced=0 if left_pending.op == "comment" else 1,  # a later marker's save recorded the comment
        pending=msgspec.structs.replace(left_pending, since=lapsed - 100),
        lease=Lease(owner="dead", expires=lapsed),
    )
    await store.save(dead, revision)

    keeper = LeaseKeeper(store, "me", ttl=30)
    taken = await keeper.acquire(1, reopen.incidentversion, wait=0)
    assert taken is not None
    with pytest.raises(RetryableError, match=r"may still land|unknown outcome") as caught:
        await outside.sync_all([comment, resolve, reopen], taken, keeper)
    assert caught.value.delay is not None and caught.value.delay > 50  # the grace, from the lapse
    assert not any(call.startswith("status") for call in outside.calls)
    await keeper.release()

    # Once the grace is over, the state is pushed anew and each comment still shows once.
    record, revision = await store.load(1)
    assert record is not None
    over = time.time() - 61
    aged = msgspec.structs.replace(record, state_unsure_since=over if record.state_unsure_since else None)
    if aged.pending is not None and aged.pending.op == "state":
        aged = msgspec.structs.replace(aged, pending=msgspec.structs.replace(aged.pending, since=over))
    await store.save(aged, revision)
    stored = await apply(outside, store, reopen)
    assert outside.status[1] == "unresolved"
    assert [p for p in outside.objects[1] if "#1]" in p] == ["a [incident-1 #1]"]
    assert stored.pending is None and stored.state_unsure_since is None
