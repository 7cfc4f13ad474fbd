"""The record's lease rules, and LeaseKeeper's compare-and-set protocol over a record store."""

from __future__ import annotations

import pytest

from services.workers.errors import RetryableError
from services.workers.lease import LeaseBusy, LeaseKeeper
from services.workers.records import (
    ExternalRef,
    IncidentRecord,
    Lease,
    Pending,
    applied,
    comment_tag,
    decode_record,
    encode_record,
    is_stale,
    lease_blocks,
    note_tag,
    with_lease,
)
from services.workers.store import MemoryRecordStore


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_lease_blocks_only_other_owners_until_it_expires() -> None:
    record = IncidentRecord(incident_id=1, lease=Lease(owner="a", expires=110.0))
    assert lease_blocks(record, "b", now=100.0)
    assert not lease_blocks(record, "a", now=100.0)
    assert not lease_blocks(record, "b", now=110.0)
    assert not lease_blocks(IncidentRecord(incident_id=1), "b", now=0.0)


def test_applied_records_the_version_and_clears_pending_posted_and_lease() -> None:
    record = IncidentRecord(
        incident_id=3,
        version=2,
        posted=("x",),
        pending=Pending(op="note", since=1.0, tag="x"),
        lease=Lease(owner="a", expires=5.0),
    )
    done = applied(record, 5)
    assert (done.version, done.pending, done.posted, done.lease) == (5, None, (), None)
    assert is_stale(done, 5) and is_stale(done, 4) and not is_stale(done, 6)


def test_the_record_round_trips_as_compact_json() -> None:
    record = IncidentRecord(
        incident_id=42,
        ref=ExternalRef(id="10001", key="OPS-1"),
        version=3,
        comments_synced=1,
        status="resolved",
        acknowledged="yes",
        message="m",
        pending=Pending(op="comment", since=2.5, tag="t", index=2),
    )
    raw = encode_record(record)
    assert decode_record(raw) == record
    assert b"channel" not in raw and b"lease" not in raw  # unset optional fields are left out


def test_tags_name_the_incident_and_the_position_or_version() -> None:
    assert comment_tag(42, 3) == "[incident-42 #3]"
    assert note_tag(42, 7, "acknowledged") == "[incident-42 v7 acknowledged]"


async def test_acquire_creates_the_record_with_our_lease() -> None:
    store, clock = MemoryRecordStore(), Clock()
    keeper = LeaseKeeper(store, "me", ttl=30, clock=clock)
    record = await keeper.acquire(7, 1, wait=0)
    assert record is not None and record.lease == Lease(owner="me", expires=1030.0)
    stored, revision = await store.load(7)
    assert stored == record and revision == keeper.revision


async def test_acquire_returns_none_for_an_already_applied_version() -> None:
    store = MemoryRecordStore()
    await store.save(IncidentRecord(incident_id=7, version=4), 0)
    assert await LeaseKeeper(store, "me", ttl=30).acquire(7, 4, wait=0) is None


async def test_acquire_gives_up_on_a_live_foreign_lease_after_waiting() -> None:
    store, clock = MemoryRecordStore(), Clock()
    await store.save(IncidentRecord(incident_id=7, lease=Lease(owner="other", expires=2000.0)), 0)
    keeper = LeaseKeeper(store, "me", ttl=30, clock=clock, poll=0.01)
    with pytest.raises(LeaseBusy):
        await keeper.acquire(7, 1, wait=0.05)
    assert keeper.waits >= 2


async def test_acquire_takes_over_an_expired_lease() -> None:
    store, clock = MemoryRecordStore(), Clock(now=3000.0)
    await store.save(IncidentRecord(incident_id=7, lease=Lease(owner="dead", expires=2000.0)), 0)
    record = await LeaseKeeper(store, "me", ttl=30, clock=clock).acquire(7, 1, wait=0)
    assert record is not None and record.lease is not None and record.lease.owner == "me"


async def test_saving_after_someone_else_wrote_means_the_lease_is_lost() -> None:
    store = MemoryRecordStore()
    keeper = LeaseKeeper(store, "me", ttl=30)
    record = await keeper.acquire(7, 1, wait=0)
    assert record is not None
    _, revision = await store.load(7)
    await store.save(with_lease(record, "thief", 0, 10**9), revision)
    with pytest.raises(RetryableError, match="lost the lease"):
        await keeper.save(record)
    assert not keeper.held


async def test_finish_writes_the_version_and_releases_the_lease() -> None:
    store = MemoryRecordStore()
    keeper = LeaseKeeper(store, "me", ttl=30)
    record = await keeper.acquire(7, 1, wait=0)
    assert record is not None
    await keeper.save(record)
    await keeper.finish(record, 1)
    stored, _ = await store.load(7)
    assert stored is not None and stored.version == 1 and stored.lease is None


async def test_release_keeps_saved_progress_and_drops_the_lease() -> None:
    store = MemoryRecordStore()
    keeper = LeaseKeeper(store, "me", ttl=30)
    record = await keeper.acquire(7, 1, wait=0)
    assert record is not None
    await keeper.save(IncidentRecord(incident_id=7, ref=ExternalRef(id="1"), pending=Pending(op="create", since=1.0)))
    await keeper.release()
    stored, _ = await store.load(7)
    assert stored is not None and stored.lease is None
    assert stored.ref == ExternalRef(id="1") and stored.pending is not None
