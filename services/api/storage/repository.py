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
import structlog

from services.api.incidents.domain import Acknowledged, AlertFields, Incident, Severity, Status, firing_after
from services.api.incidents.events import EventRecorder
from services.api.storage.bulk import INCIDENT_COLUMNS, UPDATE_COLUMNS, insert_rows, update_incidents
from services.api.storage.db import DUPLICATE_KEY_ERRORS, UNAVAILABLE_ERRORS, Db, from_micros, to_micros
from services.api.storage.groupcommit import DEFAULT_MAX_QUEUED, GroupCommit
from services.api.storage.outbox import OutboxRow
from services.api.storage.repeats import Count, add_count, add_counts, open_incidents
from services.api.storage.tables import idempotency_keys, incident_comments, incident_events, incidents
from shared.events import utcnow

T = TypeVar("T")
MAX_CAS_ATTEMPTS = 8
MAX_GROUP_COMMIT = 256
"""Creates per transaction by default (GROUP_COMMIT_MAX)."""
PRUNE_CHUNK = 1000  # idempotency keys deleted per statement: each delete holds its locks only briefly
# The write path as plain SQL: compiling SQLAlchemy Core per statement cost half the API's CPU.
INSERT_INCIDENT = (
    "INSERT INTO incidents (message, status, acknowledged, version, created_at, updated_at, severity, source, labels, "
    "dedup_key, open_dedup_key, firing_alerts, alert_count, last_alert_at, integration, dedup_owner) "
    "VALUES (:message, :status, :acknowledged, :version, :created_at, :updated_at, :severity, :source, :labels, "
    ":dedup_key, :open_dedup_key, :firing_alerts, :alert_count, :last_alert_at, :integration, :dedup_owner)"
)
INSERT_EVENT = (
    "INSERT INTO incident_events (event_id, incident_id, version, type, actor, request_id, comment, payload, "
    "created_at) VALUES (:event_id, :incident_id, :version, :type, :actor, :request_id, :comment, :payload, "
    ":created_at)"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (event_row_id, incident_id, created_at) VALUES (:event_row_id, :incident_id, :created_at)"
)
INSERT_COMMENT = (
    "INSERT INTO incident_comments (incident_id, position, body, created_at) "
    "VALUES (:incident_id, :position, :body, :created_at)"
)


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
        structlog.contextvars.bind_contextvars(incident_id=incident.id, event_ids=new.event_ids)
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
        if self.on_created is not None:
            self.on_created(handed)
        else:
            self.on_commit()
        return [new.incident for new in group]

    async def _insert_group(self, group: list[NewIncident]) -> list[OutboxRow]:
        """One multi-row insert per table for the whole group, inside the caller's transaction."""
        rows = []
        for new in group:
            columns = _incident_columns(new.incident)
            rows.append([columns[name] for name in INCIDENT_COLUMNS])
        ids = await insert_rows(self.db, "incidents", rows, returning_ids=True)
        event_rows: list[list[Any]] = []
        incident_of_event: list[int] = []
        owner: list[int] = []
        handed: list[OutboxRow] = []
        comment_rows: list[list[Any]] = []
        answers: list[list[Any]] = []
        now = to_micros(utcnow())
        for index, (new, incident_id) in enumerate(zip(group, ids, strict=True)):
            incident = new.incident
            incident.id = incident_id
            change_time = incident.created_at or utcnow()
            comment_rows += [
                [incident_id, position, body, to_micros(incident.updated_at or change_time)]
                for position, body in enumerate(incident.comments)
            ]
            for row in self._event_rows(incident, new.recorder):
                event_rows.append(row)
                incident_of_event.append(incident_id)
                owner.append(index)
            if new.claim is not None:
                response = new.claim.render(incident)
                answers.append(
                    [new.claim.key, new.claim.fingerprint, response.status_code, response.body.decode(), now]
                )
        event_ids = await insert_rows(self.db, "incident_events", event_rows, returning_ids=True)
        outbox_rows = [
            [row_id, incident_id, row[-1]]
            for row_id, incident_id, row in zip(event_ids, incident_of_event, event_rows, strict=True)
        ]
        await insert_rows(self.db, "incident_comments", comment_rows)
        outbox_ids = await insert_rows(self.db, "outbox", outbox_rows, returning_ids=True)
        await insert_rows(self.db, "idempotency_keys", answers)
        for new in group:
            new.event_ids.clear()
        for outbox_id, incident_id, row, new_index in zip(
            outbox_ids, incident_of_event, event_rows, owner, strict=True
        ):
            group[new_index].event_ids.append(str(row[0]))
            handed.append(OutboxRow(outbox_id, incident_id, str(row[0]), str(row[7]).encode()))
        return handed

    @staticmethod
    def _event_rows(incident: Incident, recorder: EventRecorder) -> list[list[Any]]:
        assert incident.id is not None
        return [
            [
                e.id,
                incident.id,
                e.version,
                e.type,
                e.actor,
                e.request_id,
                e.comment,
                e.payload.decode(),
                to_micros(e.at),
            ]
            for e in recorder.events(incident)
        ]

    async def _add_one(self, new: NewIncident) -> Incident:
        """One create in its own transaction: the group's fallback."""
        incident, recorder, claim = new.incident, new.recorder, new.claim
        assert incident.created_at is not None and incident.updated_at is not None
        database = self.db.database
        try:
            async with self.db.write():
                try:
                    incident.id = await database.execute(INSERT_INCIDENT, _incident_columns(incident))
                except DUPLICATE_KEY_ERRORS:
                    raise DedupKeyInUse(_in_use(incident)) from None
                new.event_ids[:] = await self._write_changes(incident, recorder, first_comment=0)
                await self._store_response(incident, claim)
        except DUPLICATE_KEY_ERRORS:
            if claim is None:
                raise
            raise Replayed() from None
        self.on_commit()
        return incident

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
        structlog.contextvars.bind_contextvars(incident_id=incident_id, event_ids=request.event_ids)
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
        """Every change of the group in one transaction: one read of the incidents (locked on MySQL), each
        change applied in arrival order to the state the previous one left, then one insert per table."""
        loaded = await self._load_many(sorted({request.incident_id for request in group}), for_update=True)
        current = dict(loaded)
        outcomes: list[Incident | BaseException] = []
        event_rows: list[list[Any]] = []
        comment_rows: list[list[Any]] = []
        answers: list[list[Any]] = []
        owners: list[IncidentChange] = []
        now = to_micros(utcnow())
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
                rows = self._event_rows(incident, request.recorder) if incident.changes else []
            except Exception as exc:  # the request's own error (a domain rule, a too large event)
                outcomes.append(exc)
                continue
            assert incident.id is not None
            if incident.changes:
                at = to_micros(incident.updated_at or utcnow())
                comment_rows += [
                    [incident.id, position, body, at]
                    for position, body in enumerate(incident.comments[len(before.comments) :], len(before.comments))
                ]
                event_rows += rows
                owners += [request] * len(rows)
            if request.claim is not None:
                response = request.claim.render(incident)
                answers.append(
                    [request.claim.key, request.claim.fingerprint, response.status_code, response.body.decode(), now]
                )
            current[request.incident_id] = incident
            outcomes.append(incident)
        changed = [current[i] for i in sorted(current) if current[i].version != loaded[i].version]
        updates = [[*_update_columns(incident), incident.id, loaded[incident.id or 0].version] for incident in changed]
        if await update_incidents(self.db, updates) != len(updates):
            raise _Stale()
        await insert_rows(self.db, "incident_comments", comment_rows)
        event_row_ids = await insert_rows(self.db, "incident_events", event_rows, returning_ids=True)
        outbox_rows = [[row_id, row[1], row[-1]] for row_id, row in zip(event_row_ids, event_rows, strict=True)]
        await insert_rows(self.db, "outbox", outbox_rows)
        await insert_rows(self.db, "idempotency_keys", answers)
        for request, row in zip(owners, event_rows, strict=True):
            request.event_ids.append(str(row[0]))
        return outcomes, bool(changed)

    async def _change_one(self, request: IncidentChange) -> Incident:
        """One change in its own transaction, retried on a version race: the group's fallback."""
        incident_id, mutate, recorder = request.incident_id, request.mutate, request.recorder
        expected_version, claim = request.expected_version, request.claim
        for _ in range(MAX_CAS_ATTEMPTS):
            try:
                async with self.db.write():
                    incident = await self._load(incident_id, for_update=True)
                    if incident is None:
                        raise NotFound(incident_id)
                    if expected_version is not None and incident.version != expected_version:
                        raise PreconditionFailed(incident.version)
                    loaded_version, loaded_comments = incident.version, len(incident.comments)
                    mutate(incident)
                    if incident.changes:
                        await self._save(incident, loaded_version)
                        request.event_ids[:] = await self._write_changes(
                            incident, recorder, first_comment=loaded_comments
                        )
                    await self._store_response(incident, claim)
            except _Stale:
                continue
            except DUPLICATE_KEY_ERRORS:
                if claim is None:
                    raise
                raise Replayed() from None
            if incident.changes:
                self.on_commit()
            return incident
        raise VersionConflict(f"incident {incident_id} changed too often, try again")

    async def get(self, incident_id: int) -> Incident | None:
        async with self.db.session():
            return await self._load(incident_id)

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
                outcomes, counts = _count_repeats(group, {(i.dedup_key, i.owner): i for i in found})
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
        return [int(r[0]) for r in rows]

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
            incident_id, version, type_, actor, at = int(row[0]), int(row[1]), str(row[2]), str(row[3]), int(row[4])
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
                incident_events.c.created_at,
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
        return [TimelineEntry(int(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), r[5], r[6]) for r in rows]

    async def versions_since(self, incident_id: int, types: Sequence[str]) -> tuple[int, int, bool] | None:
        """The incident's latest version, the latest version of a change of one of `types`, and whether it was
        deleted (two-way sync's stale-click rule), in one indexed read of the audit log; None: no such incident."""
        kinds = incident_events.c.type.in_(list(types))
        row = await self.db.database.fetch_one(
            sa.select(
                sa.func.max(incident_events.c.version),
                sa.func.max(sa.case((kinds, incident_events.c.version), else_=0)),
                sa.func.max(sa.case((incident_events.c.type == "deleted", 1), else_=0)),
            ).where(incident_events.c.incident_id == incident_id)
        )
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1] or 0), bool(row[2])

    async def prune_idempotency_keys(self, older_than_micros: int) -> int:
        """Delete keys stored before the cutoff, a chunk per transaction, by the `created_at` index."""
        pruned = 0
        while True:
            async with self.db.write():
                chunk = [str(row[0]) for row in await self.db.database.fetch_all(expired_keys(older_than_micros))]
                if chunk:
                    await self.db.database.execute(
                        idempotency_keys.delete().where(
                            idempotency_keys.c.key.in_(chunk), idempotency_keys.c.created_at < older_than_micros
                        )
                    )
            pruned += len(chunk)
            if len(chunk) < PRUNE_CHUNK:
                return pruned

    async def _load(self, incident_id: int, *, for_update: bool = False) -> Incident | None:
        stmt = sa.select(incidents).where(incidents.c.id == incident_id, incidents.c.deleted_at.is_(None))
        if for_update and not self.db.is_sqlite:
            stmt = stmt.with_for_update()
        row = await self.db.database.fetch_one(stmt)
        if row is None:
            return None
        comments = await self._comments([incident_id])
        return _incident(row, comments.get(incident_id, []))

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

    async def _save(self, incident: Incident, loaded_version: int) -> None:
        try:
            await self.db.database.execute(
                incidents.update()
                .where(incidents.c.id == incident.id, incidents.c.version == loaded_version)
                .values(**_changed_columns(incident))
            )
        except DUPLICATE_KEY_ERRORS:
            raise DedupKeyInUse(_in_use(incident)) from None
        if await self.db.affected_rows() != 1:
            raise _Stale()

    async def _write_changes(self, incident: Incident, recorder: EventRecorder, *, first_comment: int) -> list[str]:
        """The new comments, the events and their outbox rows; the events' ids."""
        assert incident.id is not None and incident.created_at is not None
        database = self.db.database
        for position, body in enumerate(incident.comments[first_comment:], start=first_comment):
            await database.execute(
                INSERT_COMMENT,
                {
                    "incident_id": incident.id,
                    "position": position,
                    "body": body,
                    "created_at": to_micros(incident.updated_at or incident.created_at),
                },
            )
        event_ids = []
        for event in recorder.events(incident):
            event_ids.append(event.id)
            at = to_micros(event.at)
            event_row_id = await database.execute(
                INSERT_EVENT,
                {
                    "event_id": event.id,
                    "incident_id": incident.id,
                    "version": event.version,
                    "type": event.type,
                    "actor": event.actor,
                    "request_id": event.request_id,
                    "comment": event.comment,
                    "payload": event.payload.decode(),
                    "created_at": at,
                },
            )
            await database.execute(
                INSERT_OUTBOX, {"event_row_id": event_row_id, "incident_id": incident.id, "created_at": at}
            )
        return event_ids

    async def _store_response(self, incident: Incident, claim: IdempotencyClaim | None) -> None:
        if claim is None:
            return
        response = claim.render(incident)
        await self.db.database.execute(
            idempotency_keys.insert().values(
                key=claim.key,
                fingerprint=claim.fingerprint,
                status_code=response.status_code,
                response=response.body.decode(),
                created_at=to_micros(utcnow()),  # the request's time: a no-op on an old incident is kept too
            )
        )


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


def _incident_columns(incident: Incident) -> dict[str, Any]:
    assert incident.created_at is not None and incident.updated_at is not None
    return {
        "message": incident.message,
        "status": incident.status.value,
        "acknowledged": incident.acknowledged.value,
        "version": incident.version,
        "created_at": to_micros(incident.created_at),
        "updated_at": to_micros(incident.updated_at),
        **_alert_columns(incident),
    }


def _changed_columns(incident: Incident) -> dict[str, Any]:
    """What a change rewrites (UPDATE_COLUMNS), for one `_save` or a group's prepared UPDATE."""
    assert incident.updated_at is not None
    return {
        "message": incident.message,
        "status": incident.status.value,
        "acknowledged": incident.acknowledged.value,
        "version": incident.version,
        "updated_at": to_micros(incident.updated_at),
        "deleted_at": to_micros(incident.updated_at) if incident.deleted else None,
        **_alert_columns(incident),
    }


def _update_columns(incident: Incident) -> list[Any]:
    """The values of UPDATE_COLUMNS in their order."""
    values = _changed_columns(incident)
    return [values[column] for column in UPDATE_COLUMNS]


def _alert_columns(incident: Incident) -> dict[str, Any]:
    alert = incident.alert
    return {
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


def _count_repeats(
    group: list[AlertRepeat], open_by_key: dict[tuple[str, str], Any]
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
