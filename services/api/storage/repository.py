"""Incident storage: the only module that knows SQL. Each change commits with its events and outbox rows."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import msgspec
import sqlalchemy as sa

from services.api.incidents.domain import Acknowledged, AlertFields, Incident, Severity, Status, firing_after
from services.api.incidents.events import EventRecorder
from services.api.storage.bulk import insert_rows, update_incidents
from services.api.storage.db import DUPLICATE_KEY_ERRORS, UNAVAILABLE_ERRORS, Db, from_micros, to_micros
from services.api.storage.groupcommit import DEFAULT_MAX_QUEUED, GroupCommit
from services.api.storage.outbox import OutboxRow
from services.api.storage.repeats import Count, OpenIncident, add_count, add_counts, open_incidents
from services.api.storage.tables import idempotency_keys, incident_comments, incident_events, incidents, outbox
from shared import logcontext
from shared.events import utcnow

T = TypeVar("T")
MAX_CAS_ATTEMPTS = 8
MAX_GROUP_COMMIT = 256
"""Creates per transaction by default (GROUP_COMMIT_MAX)."""
PRUNE_CHUNK = 1000  # idempotency keys deleted per statement: each delete holds its locks only briefly


class NotFound(LookupError):
    """No such incident (or it was deleted)."""


class DedupKeyInUse(RuntimeError):
    """Another open incident holds this dedup key."""


class VersionConflict(RuntimeError):
    """The incident kept changing under us; the caller may retry."""


class PreconditionFailed(RuntimeError):
    """If-Match named a version the incident no longer has."""

    def __init__(self, current: int) -> None:
        super().__init__(f"incident is at version {current}")
        self.current = current


class Replayed(RuntimeError):
    """Another request with the same Idempotency-Key committed first: serve its stored response."""


class IdempotencyMismatch(ValueError):
    """An Idempotency-Key was reused for a different request."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """Store the response under `key` in the same transaction as the change."""

    key: str
    fingerprint: str
    render: Callable[[Incident], StoredResponse]


@dataclass(frozen=True, slots=True)
class ListFilter:
    status: Status | None = None
    acknowledged: Acknowledged | None = None
    severity: Severity | None = None
    source: str | None = None
    dedup_key: str | None = None
    before_id: int | None = None
    limit: int = 50
    text: str | None = None
    """Words that must all appear (as word prefixes) in the message, source, labels or comments."""
    labels: tuple[tuple[str, str], ...] = ()
    by_severity: bool = False
    """Most severe first, unacknowledged first, then newest; the cursor is then (rank, acknowledged, id)."""
    before_rank: int | None = None
    before_acknowledged: Acknowledged | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    """Who did what last to an incident, read from its event log for the list and the incident page."""

    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    last_type: str | None = None
    last_actor: str | None = None
    last_at: datetime | None = None


SEARCH_WORD = re.compile(r"\w+")
MAX_SEARCH_WORDS = 8
INNODB_STOPWORDS = frozenset(
    "a about an are as at be by com de en for from how i in is it la of on or that the this to was what when where "
    "who will with und www".split()
)


@dataclass(frozen=True, slots=True)
class AlertRepeat:
    """An alert for a dedup key that may already have an open incident: counted on it, without an event."""

    owner: str
    dedup_key: str
    at: datetime
    firing: frozenset[str] | None = None
    """Alertmanager: the group's alerts firing now; when that changes the incident, nothing is counted."""
    partial: bool = False
    """Alertmanager's truncatedAlerts: alerts were left out, so a missing one may still fire."""


@dataclass(frozen=True, slots=True)
class Repeated:
    incident_id: int | None
    """The open incident of the key and owner; None when there is none (open one)."""
    counted: bool = False
    """False with an incident: its alerts changed (joined or resolved), which is a change with events."""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    time: int
    type: str
    version: int
    actor: str
    event_id: str
    request_id: str | None
    comment: str | None


@runtime_checkable
class IncidentRepository(Protocol):
    async def add(
        self, incident: Incident, recorder: EventRecorder, claim: IdempotencyClaim | None = None
    ) -> Incident: ...
    async def change(
        self,
        incident_id: int,
        mutate: Callable[[Incident], None],
        recorder: EventRecorder,
        *,
        expected_version: int | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> Incident: ...
    async def get(self, incident_id: int) -> Incident | None: ...
    async def find_open(self, owner: str, dedup_key: str) -> int | None: ...
    async def repeat_alert(self, repeat: AlertRepeat) -> Repeated: ...
    async def quiet_alerts(self, integration: str, quiet_since: datetime, limit: int = 100) -> list[int]: ...
    async def list_incidents(self, query: ListFilter) -> list[Incident]: ...
    async def activity(self, found: list[Incident]) -> dict[int, Activity]: ...
    async def stored_response(self, key: str, fingerprint: str) -> StoredResponse | None: ...
    async def timeline(self, incident_id: int) -> list[TimelineEntry]: ...


def fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(slots=True)
class NewIncident:
    incident: Incident
    recorder: EventRecorder
    claim: IdempotencyClaim | None
    event_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class IncidentChange:
    incident_id: int
    mutate: Callable[[Incident], None]
    recorder: EventRecorder
    expected_version: int | None
    claim: IdempotencyClaim | None
    event_ids: list[str] = field(default_factory=list)


class SqlIncidentRepository:
    def __init__(
        self,
        db: Db,
        on_commit: Callable[[], None] = lambda: None,
        on_created: Callable[[list[OutboxRow]], None] | None = None,
        *,
        max_group: int = MAX_GROUP_COMMIT,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self.db = db
        self.on_commit = on_commit
        self.on_created = on_created
        self.creates: GroupCommit[NewIncident, Incident] = GroupCommit(
            self._add_group, max_batch=max_group, max_queued=max_queued
        )
        self.changes: GroupCommit[IncidentChange, Incident] = GroupCommit(
            self._change_group, max_batch=max_group, max_queued=max_queued
        )
        self.repeats: GroupCommit[AlertRepeat, Repeated] = GroupCommit(
            self._repeat_group, max_batch=max_group, max_queued=max_queued
        )

    async def add(self, incident: Incident, recorder: EventRecorder, claim: IdempotencyClaim | None = None) -> Incident:
        """Store a new incident and its events; concurrent creates share one transaction (group commit)."""
        new = NewIncident(incident, recorder, claim)
        await self.creates.submit(new)
        logcontext.bind(incident_id=incident.id, event_ids=new.event_ids)
        return incident

    async def _add_group(self, group: list[NewIncident]) -> list[Incident | BaseException]:
        failed_before_commit = False
        try:
            async with self.db.write():
                try:
                    handed = await self._insert_group(group)
                except Exception as exc:
                    failed_before_commit = not isinstance(exc, UNAVAILABLE_ERRORS)
                    raise
        except Exception:
            if not failed_before_commit:
                raise  # the database is gone, or the commit failed and may have landed: nothing is written again
            for new in group:
                new.incident.id = None
            # Nothing of the group was committed and one of them can't be stored: each alone, so only that one fails.
            return await _each_alone(group, self._add_one)
        self._created(handed)
        return [new.incident for new in group]

    async def _insert_group(self, group: list[NewIncident]) -> list[OutboxRow]:
        """The group's creates, inside the caller's transaction."""
        return await self._insert_creates(group)

    async def _add_one(self, new: NewIncident) -> Incident:
        """One create in its own transaction, written as a group of one: the group's fallback."""
        try:
            async with self.db.write():
                handed = await self._insert_creates([new])
        except DUPLICATE_KEY_ERRORS:
            if new.claim is None:
                raise
            raise Replayed() from None
        self._created(handed)
        return new.incident

    def _created(self, handed: list[OutboxRow]) -> None:
        if self.on_created is not None:
            self.on_created(handed)
        else:
            self.on_commit()

    async def _insert_creates(self, group: list[NewIncident]) -> list[OutboxRow]:
        """One multi-row insert per table for all of `group`, inside the caller's transaction; the outbox rows."""
        try:
            ids = await insert_rows(
                self.db, incidents, [_incident_values(new.incident) for new in group], returning_ids=True
            )
        except DUPLICATE_KEY_ERRORS:
            if len(group) > 1:
                raise  # whose dedup key is taken is not known here: each alone finds out
            raise DedupKeyInUse(_in_use(group[0].incident)) from None
        history = _History(to_micros(utcnow()))
        for new, incident_id in zip(group, ids, strict=True):
            incident = new.incident
            incident.id = incident_id
            history.add(new, incident, _event_rows(incident, new.recorder), first_comment=0)
        return await self._insert_history(history, hand_over=True)

    async def _insert_history(self, history: _History, *, hand_over: bool) -> list[OutboxRow]:
        """The comments, events, outbox rows and stored answers of a group; the outbox rows when `hand_over`."""
        await insert_rows(self.db, incident_comments, history.comments)
        event_row_ids = await insert_rows(self.db, incident_events, history.events, returning_ids=True)
        outbox_rows = [
            {"event_row_id": row_id, "incident_id": row["incident_id"], "created_at": row["created_at"]}
            for row_id, row in zip(event_row_ids, history.events, strict=True)
        ]
        outbox_ids = await insert_rows(self.db, outbox, outbox_rows, returning_ids=hand_over)
        await insert_rows(self.db, idempotency_keys, history.answers)
        for request in history.owners:
            request.event_ids.clear()
        for request, row in zip(history.owners, history.events, strict=True):
            request.event_ids.append(row["event_id"])
        if not hand_over:
            return []
        return [
            OutboxRow(outbox_id, row["incident_id"], row["event_id"], row["payload"].encode())
            for outbox_id, row in zip(outbox_ids, history.events, strict=True)
        ]

    async def change(
        self,
        incident_id: int,
        mutate: Callable[[Incident], None],
        recorder: EventRecorder,
        *,
        expected_version: int | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> Incident:
        """Apply `mutate` and store the result with its events; concurrent changes share one transaction
        (group commit), in the order they arrived, so two changes of one incident apply one after the other."""
        request = IncidentChange(incident_id, mutate, recorder, expected_version, claim)
        incident = await self.changes.submit(request)
        logcontext.bind(incident_id=incident_id, event_ids=request.event_ids)
        return incident

    async def _change_group(self, group: list[IncidentChange]) -> list[Incident | BaseException]:
        failed_before_commit = False
        try:
            async with self.db.write():
                try:
                    outcomes, changed = await self._apply_changes(group)
                except Exception as exc:
                    failed_before_commit = not isinstance(exc, UNAVAILABLE_ERRORS)
                    raise
        except Exception:
            if not failed_before_commit:
                raise  # as for creates: a change that may have landed is never applied twice
            # A taken dedup key, a replayed Idempotency-Key, a value the database refused, a version race:
            # each alone, so only that one fails.
            return await _each_alone(group, self._change_one)
        if changed:
            self.on_commit()
        return outcomes

    async def _apply_changes(self, group: list[IncidentChange]) -> tuple[list[Incident | BaseException], bool]:
        """The group's changes, inside the caller's transaction."""
        return await self._write_changes(group)

    async def _change_one(self, request: IncidentChange) -> Incident:
        """One change in its own transaction, written as a group of one and retried on a version race: the
        group's fallback."""
        for _ in range(MAX_CAS_ATTEMPTS):
            try:
                async with self.db.write():
                    (outcome,), changed = await self._write_changes([request])
                    if isinstance(outcome, BaseException):
                        raise outcome
            except _Stale:
                continue
            except DUPLICATE_KEY_ERRORS:
                if request.claim is None:
                    raise
                raise Replayed() from None
            if changed:
                self.on_commit()
            return outcome
        raise VersionConflict(f"incident {request.incident_id} changed too often, try again")

    async def _write_changes(self, group: list[IncidentChange]) -> tuple[list[Incident | BaseException], bool]:
        """Every change of `group` inside the caller's transaction: one read of the incidents (locked on MySQL),
        each change applied in arrival order to the state the previous one left, then one statement per table.
        Each change's outcome (its incident or its own error), and whether any incident changed."""
        loaded = await self._load_many(sorted({request.incident_id for request in group}), for_update=True)
        current = dict(loaded)
        outcomes: list[Incident | BaseException] = []
        history = _History(to_micros(utcnow()))
        for request in group:
            before = current.get(request.incident_id)
            if before is None:
                outcomes.append(NotFound(request.incident_id))
                continue
            if request.expected_version is not None and before.version != request.expected_version:
                outcomes.append(PreconditionFailed(before.version))
                continue
            incident = _working_copy(before)
            try:
                request.mutate(incident)
                events = _event_rows(incident, request.recorder) if incident.changes else []
            except Exception as exc:  # the request's own error (a domain rule, a too large event)
                outcomes.append(exc)
                continue
            history.add(request, incident, events, first_comment=len(before.comments))
            current[request.incident_id] = incident
            outcomes.append(incident)
        changed = [(i, current[i]) for i in sorted(current) if current[i].version != loaded[i].version]
        updates = [(_incident_values(incident), i, loaded[i].version) for i, incident in changed]
        try:
            updated = await update_incidents(self.db, updates)
        except DUPLICATE_KEY_ERRORS:
            if len(changed) > 1:
                raise  # whose dedup key is taken is not known here: each alone finds out
            raise DedupKeyInUse(_in_use(changed[0][1])) from None
        if updated != len(updates):
            raise _Stale()
        await self._insert_history(history, hand_over=False)
        return outcomes, bool(changed)

    async def get(self, incident_id: int) -> Incident | None:
        async with self.db.session():
            return (await self._load_many([incident_id])).get(incident_id)

    async def find_open(self, owner: str, dedup_key: str) -> int | None:
        """The open incident holding this dedup key for this owner, if any."""
        found = await self.db.database.fetch_val(
            sa.select(incidents.c.id).where(incidents.c.open_dedup_key == dedup_key, incidents.c.dedup_owner == owner)
        )
        return int(found) if found is not None else None

    async def repeat_alert(self, repeat: AlertRepeat) -> Repeated:
        """Count a repeated alert on the open incident of its key and owner, without an event. Concurrent
        repeats share one transaction (group commit): one read of all their incidents, one UPDATE of all counts."""
        return await self.repeats.submit(repeat)

    async def _repeat_group(self, group: list[AlertRepeat]) -> list[Repeated | BaseException]:
        try:
            async with self.db.write():
                found = await open_incidents(self.db, sorted({r.dedup_key for r in group}))
                outcomes, counts = _count_repeats(group, {(i.open_dedup_key, i.dedup_owner): i for i in found})
                if await add_counts(self.db, counts) != len(counts):
                    raise _Stale()  # rolls every count back
            return list(outcomes)
        except _Stale:
            pass
        # An incident was resolved since the read: count one by one; a repeat that missed opens a new one.
        async with self.db.write():
            missed = {c.incident_id for c in counts if not await add_count(self.db, c)}
        return [Repeated(None) if o.counted and o.incident_id in missed else o for o in outcomes]

    async def quiet_alerts(self, integration: str, quiet_since: datetime, limit: int = 100) -> list[int]:
        """Open incidents of an integration whose last alert came before `quiet_since`, oldest first."""
        rows = await self.db.database.fetch_all(
            sa.select(incidents.c.id)
            .where(
                incidents.c.integration == integration,
                incidents.c.last_alert_at < to_micros(quiet_since),
                incidents.c.open_dedup_key.is_not(None),
            )
            .order_by(incidents.c.last_alert_at)
            .limit(limit)
        )
        return [int(r["id"]) for r in rows]

    async def list_incidents(self, query: ListFilter) -> list[Incident]:
        stmt = sa.select(incidents).where(incidents.c.deleted_at.is_(None))
        if query.severity is not None:
            stmt = stmt.where(incidents.c.severity == query.severity.value)
        if query.source is not None:
            stmt = stmt.where(incidents.c.source == query.source)
        if query.dedup_key is not None:
            stmt = stmt.where(incidents.c.dedup_key == query.dedup_key)
        if query.status is not None:
            stmt = stmt.where(incidents.c.status == query.status.value)
        if query.acknowledged is not None:
            stmt = stmt.where(incidents.c.acknowledged == query.acknowledged.value)
        for name, value in query.labels:
            stmt = stmt.where(self._label(name) == value)
        if query.text:
            stmt = stmt.where(self._matches(query.text))
        if query.by_severity:
            # Triage order: most severe first, unacknowledged before acknowledged, then newest.
            rank, acked, key = incidents.c.severity_rank, incidents.c.acknowledged, incidents.c.id
            if query.before_id is not None and query.before_rank is not None and query.before_acknowledged:
                after_rank, after_acked = query.before_rank, query.before_acknowledged.value
                stmt = stmt.where(
                    sa.or_(
                        rank > after_rank,
                        sa.and_(rank == after_rank, acked > after_acked),
                        sa.and_(rank == after_rank, acked == after_acked, key < query.before_id),
                    )
                )
            stmt = stmt.order_by(rank, acked, key.desc()).limit(query.limit)
        else:
            if query.before_id is not None:
                stmt = stmt.where(incidents.c.id < query.before_id)
            stmt = stmt.order_by(incidents.c.id.desc()).limit(query.limit)
        async with self.db.session():
            rows = await self.db.database.fetch_all(stmt)
            comments = await self._comments([int(row["id"]) for row in rows])
        return [_incident(row, comments.get(int(row["id"]), [])) for row in rows]

    def _label(self, name: str) -> Any:
        path = f'$."{name}"'
        if self.db.is_sqlite:
            return sa.func.json_extract(incidents.c.labels, path)
        return sa.func.json_value(incidents.c.labels, path)

    def _matches(self, text: str) -> Any:
        """Full-text search: FTS5 on SQLite, InnoDB FULLTEXT in boolean mode on MariaDB; every word must match."""
        words = SEARCH_WORD.findall(text)[:MAX_SEARCH_WORDS]
        if self.db.is_sqlite:
            if not words:
                return sa.false()
            expression = " ".join(f'"{word}"*' for word in words)
            found = sa.text("SELECT rowid FROM incident_search WHERE incident_search MATCH :search").bindparams(
                search=expression
            )
            return incidents.c.id.in_(found.columns(sa.column("rowid", sa.Integer())))
        # InnoDB indexes words of 3 characters or more (innodb_ft_min_token_size): shorter ones can't be required.
        # A required stopword would match nothing, so those are left out too.
        usable = [w for w in (word.lower() for word in words) if len(w) >= 3 and w not in INNODB_STOPWORDS]
        if not usable:
            return sa.false()
        expression = " ".join(f"+{word}*" for word in usable)
        # A union of the two indexes' matches, materialised once: an OR of two MATCHes would scan every row.
        found = sa.text(
            "SELECT id FROM incidents WHERE MATCH (search_text) AGAINST (:search IN BOOLEAN MODE) UNION "
            "SELECT incident_id FROM incident_comments WHERE MATCH (search_text) AGAINST (:search IN BOOLEAN MODE)"
        ).bindparams(search=expression)
        return incidents.c.id.in_(sa.select(found.columns(sa.column("id", sa.BigInteger())).subquery().c.id))

    async def activity(self, found: list[Incident]) -> dict[int, Activity]:
        """The latest acknowledgement and resolve of each incident, and its last change, in one query."""
        ids = [i.id for i in found if i.id is not None]
        if not ids:
            return {}
        latest = {(i.id, i.version) for i in found if i.id is not None}
        rows = await self.db.database.fetch_all(
            sa.select(
                incident_events.c.incident_id,
                incident_events.c.version,
                incident_events.c.type,
                incident_events.c.actor,
                incident_events.c.created_at,
            ).where(
                incident_events.c.incident_id.in_(ids),
                sa.or_(
                    incident_events.c.type.in_(("acknowledged", "resolved")),
                    sa.tuple_(incident_events.c.incident_id, incident_events.c.version).in_(sorted(latest)),
                ),
            )
        )
        acked: dict[int, tuple[int, str, int]] = {}
        resolved: dict[int, tuple[int, int]] = {}
        last: dict[int, tuple[str, str, int]] = {}
        for row in rows:
            incident_id, version, type_ = int(row["incident_id"]), int(row["version"]), str(row["type"])
            actor, at = str(row["actor"]), int(row["created_at"])
            if type_ == "acknowledged" and version > acked.get(incident_id, (0, "", 0))[0]:
                acked[incident_id] = (version, actor, at)
            if type_ == "resolved" and version > resolved.get(incident_id, (0, 0))[0]:
                resolved[incident_id] = (version, at)
            if (incident_id, version) in latest:
                last[incident_id] = (type_, actor, at)
        result = {}
        for incident in found:
            if incident.id is None:
                continue
            ack = acked.get(incident.id) if incident.acknowledged == Acknowledged.YES else None
            done = resolved.get(incident.id) if incident.status == Status.RESOLVED else None
            change = last.get(incident.id)
            result[incident.id] = Activity(
                acknowledged_by=ack[1] if ack else None,
                acknowledged_at=from_micros(ack[2]) if ack else None,
                resolved_at=from_micros(done[1]) if done else None,
                last_type=change[0] if change else None,
                last_actor=change[1] if change else None,
                last_at=from_micros(change[2]) if change else None,
            )
        return result

    async def stored_response(self, key: str, fingerprint: str) -> StoredResponse | None:
        row = await self.db.database.fetch_one(sa.select(idempotency_keys).where(idempotency_keys.c.key == key))
        if row is None:
            return None
        if row["fingerprint"] != fingerprint:
            raise IdempotencyMismatch("Idempotency-Key was already used for a different request")
        return StoredResponse(int(row["status_code"]), str(row["response"]).encode())

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        """The audit log: every change, kept after the outbox is pruned and after deletion."""
        rows = await self.db.database.fetch_all(
            sa.select(
                incident_events.c.created_at.label("time"),
                incident_events.c.type,
                incident_events.c.version,
                incident_events.c.actor,
                incident_events.c.event_id,
                incident_events.c.request_id,
                incident_events.c.comment,
            )
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.version)
        )
        return [
            TimelineEntry(
                time=int(r["time"]),
                type=str(r["type"]),
                version=int(r["version"]),
                actor=str(r["actor"]),
                event_id=str(r["event_id"]),
                request_id=r["request_id"],
                comment=r["comment"],
            )
            for r in rows
        ]

    async def versions_since(self, incident_id: int, types: Sequence[str]) -> tuple[int, int, bool] | None:
        """The incident's latest version, the latest version of a change of one of `types`, and whether it was
        deleted (two-way sync's stale-click rule), in one indexed read of the audit log; None: no such incident."""
        kinds = incident_events.c.type.in_(list(types))
        row = await self.db.database.fetch_one(
            sa.select(
                sa.func.max(incident_events.c.version).label("latest"),
                sa.func.max(sa.case((kinds, incident_events.c.version), else_=0)).label("latest_of_types"),
                sa.func.max(sa.case((incident_events.c.type == "deleted", 1), else_=0)).label("deleted"),
            ).where(incident_events.c.incident_id == incident_id)
        )
        if row is None or row["latest"] is None:
            return None
        return int(row["latest"]), int(row["latest_of_types"] or 0), bool(row["deleted"])

    async def prune_idempotency_keys(self, older_than_micros: int) -> int:
        """Delete keys stored before the cutoff, a chunk per transaction, by the `created_at` index."""
        pruned = 0
        while True:
            async with self.db.write():
                chunk = [str(row["key"]) for row in await self.db.database.fetch_all(expired_keys(older_than_micros))]
                if chunk:
                    await self.db.database.execute(
                        idempotency_keys.delete().where(
                            idempotency_keys.c.key.in_(chunk), idempotency_keys.c.created_at < older_than_micros
                        )
                    )
            pruned += len(chunk)
            if len(chunk) < PRUNE_CHUNK:
                return pruned

    async def _load_many(self, ids: Sequence[int], *, for_update: bool = False) -> dict[int, Incident]:
        stmt = sa.select(incidents).where(incidents.c.id.in_(ids), incidents.c.deleted_at.is_(None))
        if for_update and not self.db.is_sqlite:
            stmt = stmt.with_for_update()
        rows = await self.db.database.fetch_all(stmt)
        comments = await self._comments([int(row["id"]) for row in rows])
        return {int(row["id"]): _incident(row, comments.get(int(row["id"]), [])) for row in rows}

    async def _comments(self, ids: Sequence[int]) -> dict[int, list[str]]:
        if not ids:
            return {}
        rows = await self.db.database.fetch_all(
            sa.select(incident_comments.c.incident_id, incident_comments.c.body)
            .where(incident_comments.c.incident_id.in_(ids))
            .order_by(incident_comments.c.incident_id, incident_comments.c.position)
        )
        found: dict[int, list[str]] = {}
        for row in rows:
            found.setdefault(int(row["incident_id"]), []).append(str(row["body"]))
        return found


def expired_keys(older_than_micros: int) -> sa.Select[Any]:
    """The next chunk of keys to prune, oldest first: a range scan of ix_idempotency_keys_created_at."""
    return (
        sa.select(idempotency_keys.c.key)
        .where(idempotency_keys.c.created_at < older_than_micros)
        .order_by(idempotency_keys.c.created_at)
        .limit(PRUNE_CHUNK)
    )


def _working_copy(incident: Incident) -> Incident:
    """A copy to apply one change to: a failing change leaves the state the next one starts from untouched."""
    return dataclasses.replace(incident, comments=list(incident.comments), changes=[])


async def _each_alone(items: Sequence[T], write: Callable[[T], Awaitable[Incident]]) -> list[Incident | BaseException]:
    """The group's fallback: each item in its own transaction, answered with its own outcome. Once the database
    is unreachable the rest get that error without a try each (none of them was written)."""
    outcomes: list[Incident | BaseException] = []
    for item in items:
        if outcomes and isinstance(outcomes[-1], UNAVAILABLE_ERRORS):
            outcomes.append(outcomes[-1])
        else:
            outcomes.append(await _own_outcome(write(item)))
    return outcomes


async def _own_outcome(write: Awaitable[Incident]) -> Incident | BaseException:
    """A write's result or its own error (not found, If-Match, a domain rule, a value the database refused),
    kept for its own request: the others of its group are answered whatever it raised."""
    try:
        return await write
    except Exception as exc:
        return exc


class _Stale(Exception):
    """The version check of an UPDATE matched no row: reload and try again."""


def _incident(row: Any, comments: list[str]) -> Incident:
    return Incident(
        id=int(row["id"]),
        message=str(row["message"]),
        status=Status(row["status"]),
        acknowledged=Acknowledged(row["acknowledged"]),
        comments=comments,
        version=int(row["version"]),
        created_at=from_micros(int(row["created_at"])),
        updated_at=from_micros(int(row["updated_at"])),
        deleted=row["deleted_at"] is not None,
        alert=AlertFields(
            severity=Severity(row["severity"]) if row["severity"] else None,
            source=row["source"],
            labels=tuple(sorted(msgspec.json.decode(row["labels"], type=dict[str, str]).items()))
            if row["labels"]
            else (),
            dedup_key=row["dedup_key"],
        ),
        firing=frozenset(msgspec.json.decode(row["firing_alerts"], type=list[str]))
        if row["firing_alerts"]
        else frozenset(),
        alert_count=int(row["alert_count"] or 0),
        last_alert_at=from_micros(int(row["last_alert_at"])) if row["last_alert_at"] is not None else None,
        integration=row["integration"],
        dedup_owner=str(row["dedup_owner"] or ""),
    )


def _incident_values(incident: Incident) -> dict[str, Any]:
    """The incident's row, by column name: what a create inserts and a change rewrites."""
    assert incident.created_at is not None and incident.updated_at is not None
    alert = incident.alert
    return {
        "message": incident.message,
        "status": incident.status.value,
        "acknowledged": incident.acknowledged.value,
        "version": incident.version,
        "created_at": to_micros(incident.created_at),
        "updated_at": to_micros(incident.updated_at),
        "deleted_at": to_micros(incident.updated_at) if incident.deleted else None,
        "severity": alert.severity.value if alert.severity else None,
        "source": alert.source,
        "labels": msgspec.json.encode(alert.label_map).decode() if alert.labels else None,
        "dedup_key": alert.dedup_key,
        "open_dedup_key": incident.open_dedup_key,
        "firing_alerts": msgspec.json.encode(sorted(incident.firing)).decode() if incident.firing else None,
        "alert_count": incident.alert_count,
        "last_alert_at": to_micros(incident.last_alert_at) if incident.last_alert_at else None,
        "integration": incident.integration,
        "dedup_owner": incident.dedup_owner,
    }


def _event_rows(incident: Incident, recorder: EventRecorder) -> list[dict[str, Any]]:
    """The audit-log rows of the incident's recorded changes, by column name."""
    assert incident.id is not None
    return [
        {
            "event_id": e.id,
            "incident_id": incident.id,
            "version": e.version,
            "type": e.type,
            "actor": e.actor,
            "request_id": e.request_id,
            "comment": e.comment,
            "payload": e.payload.decode(),
            "created_at": to_micros(e.at),
        }
        for e in recorder.events(incident)
    ]


@dataclass(slots=True)
class _History:
    """What a group writes besides the incidents' rows, by column name, and which request owns each event."""

    now: int
    comments: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    owners: list[NewIncident | IncidentChange] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        request: NewIncident | IncidentChange,
        incident: Incident,
        events: list[dict[str, Any]],
        *,
        first_comment: int,
    ) -> None:
        if len(incident.comments) > first_comment:
            at = to_micros(incident.updated_at or utcnow())
            self.comments += [
                {"incident_id": incident.id, "position": position, "body": body, "created_at": at}
                for position, body in enumerate(incident.comments[first_comment:], first_comment)
            ]
        self.events += events
        self.owners += [request] * len(events)
        if request.claim is not None:
            response = request.claim.render(incident)
            self.answers.append(
                {
                    "key": request.claim.key,
                    "fingerprint": request.claim.fingerprint,
                    "status_code": response.status_code,
                    "response": response.body.decode(),
                    "created_at": self.now,  # the request's time: a no-op on an old incident is kept too
                }
            )


def _count_repeats(
    group: list[AlertRepeat], open_by_key: dict[tuple[str, str], OpenIncident]
) -> tuple[list[Repeated], list[Count]]:
    """Each repeat's outcome, and the counts to add per incident (several repeats of one key add up)."""
    outcomes: list[Repeated] = []
    counts: dict[int, Count] = {}
    for repeat in group:
        found = open_by_key.get((repeat.dedup_key, repeat.owner))
        if found is None:
            outcomes.append(Repeated(None))
            continue
        if repeat.firing is not None:
            current = (
                frozenset(msgspec.json.decode(found.firing_alerts, type=list[str]))
                if found.firing_alerts
                else frozenset()
            )
            if firing_after(current, repeat.firing, repeat.partial) != current:
                outcomes.append(Repeated(found.id))
                continue
        at = to_micros(repeat.at)
        before = counts.get(found.id)
        counts[found.id] = Count(
            found.id,
            repeat.dedup_key,
            repeat.owner,
            1 + (before.alerts if before else 0),
            max(at, before.last_alert_at if before else at),
        )
        outcomes.append(Repeated(found.id, counted=True))
    return outcomes, list(counts.values())


def _in_use(incident: Incident) -> str:
    return f"another open incident has dedup_key {incident.alert.dedup_key!r}"
