"""State-based sync shared by every outside system: diff the event's snapshot against the record."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from typing import ClassVar

import msgspec
import structlog

from services.workers.base import SyncContext
from services.workers.errors import PermanentError, RetryableError, Wait
from services.workers.records import (
    ExternalRef,
    IncidentRecord,
    Pending,
    comment_tag,
    note_tag,
)
from shared.events import CloudEvent, EventType, IncidentSnapshot
from shared.twoway import is_outside_actor

log = structlog.get_logger(__name__)
replace = msgspec.structs.replace

NOTE_TEXT = {
    "updated": "Incident message changed: {message}",
    "acknowledged": "Incident acknowledged.",
    "unacknowledged": "Incident no longer acknowledged.",
    "resolved": "Incident resolved.",
    "reopened": "Incident reopened.",
    "deleted": "Incident deleted.",
}


def note_text(kind: str, actor: str | None) -> str:
    """A change made from Slack, Jira or Zendesk says who made it in the other tools."""
    text = NOTE_TEXT[kind]
    if is_outside_actor(actor):
        return f"{text.removesuffix('.')} by {actor}."
    return text


def acted(kind: str, actor: str | None) -> str | None:
    return f"{kind} by {actor}" if actor else None


class ReconcilingWorker(ABC):
    """A worker as a handful of outside operations; `sync` decides which to call, and guards repeats.

    Calls unsafe to repeat (create, comment, note) are preceded by a pending marker saved in KV.
    After a crash, the marker says what to look for before doing it again.
    """

    name: ClassVar[str]
    note_kinds: ClassVar[frozenset[str]] = frozenset()
    """Changes that also get a comment or thread reply (keys of NOTE_TEXT)."""
    search_lag: float = 0.0
    """Seconds a just-created object may stay invisible to `find`."""
    create_grace: float = 30.0
    """Seconds a create or post whose outcome is unknown may still land outside after we gave up on it."""

    @abstractmethod
    async def find(self, incident: IncidentSnapshot) -> ExternalRef | None:
        """The object tagged with this incident, if one exists."""

    @abstractmethod
    async def create(self, incident: IncidentSnapshot) -> ExternalRef:
        """Create the object from the snapshot, tagged so that `find` finds it."""

    @abstractmethod
    async def post(self, ref: ExternalRef, text: str, tag: str) -> None:
        """Add a comment (or thread reply) whose text carries `tag`."""

    @abstractmethod
    async def has_post(self, ref: ExternalRef, tag: str) -> bool:
        """Whether a comment carrying `tag` is already there."""

    async def update_message(self, ref: ExternalRef, incident: IncidentSnapshot) -> None:
        """Show the new message and alert fields (must be safe to repeat)."""
        return None

    async def set_status(self, ref: ExternalRef, status: str) -> None:
        """Move to "resolved" or "unresolved" (must be safe to repeat)."""
        return None

    async def close(self, ref: ExternalRef) -> None:
        """Close for good after the incident was deleted (must be safe to repeat)."""
        return None

    async def refresh(self, ref: ExternalRef, incident: IncidentSnapshot, record: IncidentRecord) -> None:
        """Show the current state after a change (must be safe to repeat)."""
        return None

    def shown(self, incident: IncidentSnapshot, record: IncidentRecord) -> str | None:
        """A digest of what `refresh` would show; None: always refresh."""
        return None

    async def sync(self, event: CloudEvent, record: IncidentRecord, ctx: SyncContext) -> IncidentRecord:
        return await self.sync_all([event], record, ctx)

    async def sync_all(self, events: Sequence[CloudEvent], record: IncidentRecord, ctx: SyncContext) -> IncidentRecord:
        """Bring the outside object to the newest snapshot in one pass. Notes and comments still show once
        per event, in order; the calls that only show state (message, status, refresh) are made once."""
        incident = events[-1].data.incident
        deleting = any(e.event_type is EventType.DELETED for e in events)
        if record.deleted and record.pending is None:  # pending: its last state call may not have landed
            return record
        unsure_of_state = (record.pending is not None and record.pending.op == "state") or (
            record.state_unsure_since is not None
        )
        record = await self._recover(record)
        careful = False
        # What the notes compare with; record.message/status change only once the state call is made.
        message, status = record.message, record.status or "unresolved"
        if record.ref is None:
            record, careful = await self._find_or_create(incident, record, ctx, deleting)
            if record.ref is None:
                return record
            # The new (or found) object shows the newest snapshot; notes tell the changes after the first event.
            first = events[0].data.incident
            message, status = first.message, first.status
        ref = record.ref
        if unsure_of_state:
            # A state call of unknown outcome may have landed late over what we pushed after it: push ours.
            record = await self._push_state(ctx, record, ref, incident)
        show_fields = False
        for event in events:
            snapshot, version = event.data.incident, event.incidentversion
            if snapshot.message != message:
                text = NOTE_TEXT["updated"].format(message=snapshot.message)
                record = await self._note(ctx, record, version, "updated", text, careful)
                message = snapshot.message
            elif event.event_type is EventType.UPDATED:
                show_fields = True  # severity, source, labels or dedup key changed
            if snapshot.acknowledged != (record.acknowledged or "no"):
                kind = "acknowledged" if snapshot.acknowledged == "yes" else "unacknowledged"
                record = await self._note(ctx, record, version, kind, note_text(kind, event.actor), careful)
                record = replace(record, acknowledged=snapshot.acknowledged, acted=acted(kind, event.actor))
            for position in range(record.comments_synced + 1, len(snapshot.comments) + 1):
                record = await self._comment(ctx, record, position, snapshot.comments[position - 1], careful)
            if snapshot.status != status:
                kind = "resolved" if snapshot.status == "resolved" else "reopened"
                record = await self._note(ctx, record, version, kind, note_text(kind, event.actor), careful)
                record = replace(record, acted=acted(kind, event.actor))
                status = snapshot.status
            if event.event_type is EventType.DELETED:
                record = await self._note(ctx, record, version, "deleted", NOTE_TEXT["deleted"], careful)
        if incident.message != record.message or show_fields:
            await self._state(ctx, record, self.update_message(ref, incident))
            record = replace(record, message=incident.message)
        if incident.status != (record.status or "unresolved"):
            await self._state(ctx, record, self.set_status(ref, incident.status))
            record = replace(record, status=incident.status)
        if deleting:
            await self._state(ctx, record, self.close(ref))
            record = replace(record, deleted=True)
        # Not by diff: a refresh that failed after progress was saved leaves `record == before` on the retry.
        # By what it would show: a pass of comments only changes nothing there.
        shown = self.shown(incident, record)
        if shown is None or shown != record.shown or unsure_of_state:
            await self._state(ctx, record, self.refresh(ref, incident, record))
            record = replace(record, shown=shown)
        return record

    async def _recover(self, record: IncidentRecord) -> IncidentRecord:
        """Settle a call left pending by a crash or an unknown outcome: did it reach the outside system?"""
        if record.state_unsure_since is not None:
            remaining = self.create_grace - (time.time() - record.state_unsure_since)
            if remaining > 0:
                raise Wait("waiting out state calls a replica that lost its lease may still land", delay=remaining)
            record = replace(record, state_unsure_since=None)
        pending = record.pending
        if pending is None or pending.op == "create":
            return record
        if pending.op != "state" and await self._post_found(record):
            return self._posted(record)
        # A call that timed out or got a 5xx may still land: park the incident until the grace is over
        # (the runner keeps its messages in progress; no concurrency slot is held meanwhile).
        remaining = self.create_grace - (time.time() - pending.since)
        if remaining > 0:
            raise Wait(f"waiting out a {pending.op} call of unknown outcome", delay=remaining)
        return replace(record, pending=None)

    async def _post_found(self, record: IncidentRecord) -> bool:
        pending = record.pending
        return bool(
            record.ref is not None
            and pending is not None
            and pending.tag is not None
            and await self.has_post(record.ref, pending.tag)
        )

    @staticmethod
    def _posted(record: IncidentRecord) -> IncidentRecord:
        pending = record.pending
        assert pending is not None and pending.tag is not None
        log.info("pending post found outside", tag=pending.tag)
        if pending.op == "comment" and pending.index is not None:
            record = replace(record, comments_synced=max(record.comments_synced, pending.index))
        else:
            record = replace(record, posted=(*record.posted, pending.tag))
        return replace(record, pending=None)

    async def _find_or_create(
        self, incident: IncidentSnapshot, record: IncidentRecord, ctx: SyncContext, deleting: bool
    ) -> tuple[IncidentRecord, bool]:
        pending = record.pending
        # Only a create that may have happened (its marker is there: a crash or a lost answer) is searched
        # for; a first create never is, so calls per event don't grow with the channel or project.
        maybe_created = pending is not None and pending.op == "create"
        ref = await self.find(incident) if maybe_created else None
        if ref is None and pending is not None and pending.op == "create":
            # An earlier create may have landed (a crash, a timeout, a 5xx) and not be findable yet.
            window = max(self.search_lag, self.create_grace)
            waited = time.time() - pending.since
            if waited < window:
                raise Wait("an earlier create may not be visible yet; waiting", delay=window - waited)
        if ref is None and deleting:
            log.info("incident deleted before anything was created outside")
            return replace(record, pending=None, deleted=True), False
        found = ref is not None
        if ref is None:
            record = await ctx.save(replace(record, pending=Pending(op="create", since=time.time())))
            try:
                ref = await self.create(incident)
            except (PermanentError, RetryableError) as exc:
                if isinstance(exc, PermanentError) or not exc.maybe_applied:
                    await ctx.save(replace(record, pending=None))  # surely nothing was created
                raise
            # In a dry run nothing was created: the `event applied` line lists the requests (would_send).
            (log.debug if getattr(self, "dry_run", False) else log.info)(
                "created outside", ref=msgspec.to_builtins(ref)
            )
        else:
            log.info("found existing outside object", ref=msgspec.to_builtins(ref))
        # What a new object shows; the diff in `sync` pushes the rest of the snapshot.
        record = replace(
            record, ref=ref, pending=None, message=incident.message, status="unresolved", acknowledged="no"
        )
        if found:
            # A found object may show any earlier state (it was made from an older snapshot): push ours.
            record = await self._push_state(ctx, record, ref, incident)
        return await ctx.save(record), found

    async def _push_state(
        self, ctx: SyncContext, record: IncidentRecord, ref: ExternalRef, incident: IncidentSnapshot
    ) -> IncidentRecord:
        """Set message and status outright (both calls are safe to repeat), without notes."""
        await self._state(ctx, record, self.update_message(ref, incident))
        await self._state(ctx, record, self.set_status(ref, incident.status))
        return replace(record, message=incident.message, status=incident.status)

    async def _note(
        self, ctx: SyncContext, record: IncidentRecord, version: int, kind: str, text: str, careful: bool
    ) -> IncidentRecord:
        ref = record.ref
        if kind not in self.note_kinds or ref is None:
            return record
        tag = note_tag(record.incident_id, version, kind)
        if tag in record.posted or (careful and await self.has_post(ref, tag)):
            return replace(record, posted=tuple(sorted({*record.posted, tag})))
        record = await ctx.save(replace(record, pending=Pending(op="note", since=time.time(), tag=tag)))
        await self._post(ctx, record, ref, text, tag)
        return replace(record, pending=None, posted=(*record.posted, tag))

    async def _comment(
        self, ctx: SyncContext, record: IncidentRecord, position: int, text: str, careful: bool
    ) -> IncidentRecord:
        ref = record.ref
        assert ref is not None
        tag = comment_tag(record.incident_id, position)
        if not (careful and await self.has_post(ref, tag)):
            pending = Pending(op="comment", since=time.time(), tag=tag, index=position)
            record = await ctx.save(replace(record, pending=pending))
            await self._post(ctx, record, ref, text, tag)
        return replace(record, pending=None, comments_synced=position)

    async def _state(self, ctx: SyncContext, record: IncidentRecord, call: Awaitable[None]) -> None:
        """A state call (safe to repeat); if its outcome is unknown it may land late, over a newer state,
        so the incident's next sync waits out the grace before pushing state again."""
        try:
            await call
        except RetryableError as exc:
            if exc.maybe_applied:
                await ctx.save(replace(record, pending=Pending(op="state", since=time.time())))
            raise

    async def _post(self, ctx: SyncContext, record: IncidentRecord, ref: ExternalRef, text: str, tag: str) -> None:
        try:
            await self.post(ref, text, tag)
        except (PermanentError, RetryableError) as exc:
            if isinstance(exc, PermanentError) or not exc.maybe_applied:
                await ctx.save(replace(record, pending=None))  # surely nothing was posted
            raise
