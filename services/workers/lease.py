"""Per-incident exclusivity across replicas: a lease inside the record, taken and kept by CAS writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
import structlog

from services.workers.errors import RetryableError, Wait
from services.workers.records import (
    IncidentRecord,
    Pending,
    applied,
    is_stale,
    lease_blocks,
    with_lease,
    without_lease,
)
from services.workers.store import Conflict, RecordStore

log = structlog.get_logger(__name__)

LEASE_POLL_SECONDS = 0.2
# Part of the TTL a replica does not count on: clock skew between hosts, and the moment between the
# fence check and the request leaving.
FENCE_MARGIN = 0.2
# A parked incident looks at another replica's lease again after at most this long.
LEASE_RECHECK_SECONDS = 1.0


class LeaseBusy(Wait):
    """Another live replica holds the incident's lease: park the incident, look again later."""


class LeaseLost(RetryableError):
    """Our lease expired (we were paused) or another replica took it: no outside call may follow."""

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_applied=False)


def taken_over(record: IncidentRecord, lapsed: float) -> IncidentRecord:
    """The record as a replica taking over a lease that lapsed at `lapsed` must see it: calls its owner had in
    flight may still land, over what we push. The sync waits the grace out from the lapse, then pushes the
    state anew. A pending post or create keeps its marker (it is looked for outside); the wait rides along."""
    replace = msgspec.structs.replace
    pending = record.pending
    if pending is None:
        return replace(record, pending=Pending(op="state", since=lapsed))
    if pending.op == "state":
        return replace(record, pending=replace(pending, since=max(pending.since, lapsed)))
    return replace(record, state_unsure_since=max(record.state_unsure_since or 0.0, lapsed))


class LeaseKeeper:
    """Holds one incident's lease for one event; the SyncContext a worker saves progress through."""

    def __init__(
        self,
        store: RecordStore,
        owner: str,
        ttl: float,
        *,
        clock: Callable[[], float] = time.time,
        poll: float = LEASE_POLL_SECONDS,
    ) -> None:
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self.poll = poll
        self.record: IncidentRecord | None = None
        self.revision = 0
        self.waits = 0
        """How many times this keeper found the lease held by another replica."""
        self.loaded: IncidentRecord | None = None
        """The record as it was before we took the lease."""
        self._valid_until = 0.0
        """Monotonic time until which our lease surely holds, from our last confirmed write."""
        self._lock = asyncio.Lock()

    @property
    def held(self) -> bool:
        return self.record is not None and self.record.lease is not None

    async def acquire(
        self,
        incident_id: int,
        incidentversion: int,
        wait: float,
        cached: tuple[IncidentRecord, int] | None = None,
    ) -> IncidentRecord | None:
        """The record with our lease on it, or None when the event is already applied (stale).

        `cached`: the record and revision we last wrote, to save a read; the compare-and-set write finds
        out if someone wrote since (then we read the key). A record only grows, so "stale" by it is sure.
        """
        deadline = time.monotonic() + wait
        while True:
            if cached is not None:
                found: IncidentRecord | None
                (found, revision), cached = cached, None
            else:
                found, revision = await self.store.load(incident_id)
            record = found or IncidentRecord(incident_id=incident_id)
            if is_stale(record, incidentversion):
                return None
            now = self.clock()
            if lease_blocks(record, self.owner, now):
                holder = record.lease.owner if record.lease else None
                if time.monotonic() >= deadline:
                    left = record.lease.expires - now if record.lease else self.poll
                    delay = min(max(left, self.poll), LEASE_RECHECK_SECONDS)
                    raise LeaseBusy(f"incident {incident_id} is leased to {holder}", delay=delay)
                if self.waits == 0:
                    log.info("waiting for another replica's lease", holder=holder)
                self.waits += 1
                # Waiting costs nothing; a nak would count towards MaxDeliver.
                await asyncio.sleep(self.poll)
                continue
            started = msgspec.structs.replace(record, attempted=max(record.attempted, incidentversion))
            if record.lease is not None:
                # Another replica's lease that lapsed, or our own left by a pass whose last writes failed: either
                # way calls were made that the record does not show.
                started = taken_over(started, record.lease.expires)
            since = time.monotonic()
            leased = with_lease(started, self.owner, self.clock(), self.ttl)
            try:
                self.revision = await self.store.save(leased, revision)
            except Conflict:
                continue
            self.loaded = record
            self.record = leased
            self._valid_until = since + self.ttl * (1 - FENCE_MARGIN)
            return leased

    def check(self) -> None:
        """The fence: raise LeaseLost unless our lease surely still holds (no round trip)."""
        if self.record is None or self.record.lease is None:
            raise LeaseLost("the incident's lease was lost to another replica: not calling out")
        if time.monotonic() >= self._valid_until:
            raise LeaseLost("the incident's lease may have expired (was this process paused?): not calling out")

    async def save(self, record: IncidentRecord) -> IncidentRecord:
        """Persist progress under our lease, renewing it; RetryableError if the lease was lost."""
        async with self._lock:
            since = time.monotonic()
            saved = await self._write(with_lease(record, self.owner, self.clock(), self.ttl))
            self._valid_until = since + self.ttl * (1 - FENCE_MARGIN)
            return saved

    async def renew(self) -> None:
        async with self._lock:
            if self.record is not None and self.record.lease is not None:
                since = time.monotonic()
                await self._write(with_lease(self.record, self.owner, self.clock(), self.ttl))
                self._valid_until = since + self.ttl * (1 - FENCE_MARGIN)

    async def finish(self, record: IncidentRecord, incidentversion: int) -> None:
        """The final write: the version is applied, nothing pending, lease released."""
        async with self._lock:
            await self._write(applied(record, incidentversion))

    async def release(self, progress: IncidentRecord | None = None) -> None:
        """Give the lease back after a failure, keeping whatever progress was saved, or `progress`: the record
        as a sync returned it (what it did outside) when only the final write failed."""
        async with self._lock:
            if self.record is None or self.record.lease is None:
                return
            try:
                await self._write(without_lease(progress if progress is not None else self.record))
            except RetryableError:
                log.warning("lease already lost")

    async def _write(self, record: IncidentRecord) -> IncidentRecord:
        try:
            self.revision = await self.store.save(record, self.revision)
        except Conflict:
            self.record = None
            raise RetryableError(f"lost the lease on incident {record.incident_id}") from None
        self.record = record
        return record
