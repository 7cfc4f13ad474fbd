"""What a worker keeps in its KV bucket (`refs-<worker>`): the per-incident record, the pure rules for its lease,
and the last error of a message. Workers write these; the API (links) and the event handler (dead letters) read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

PendingOp = Literal["create", "comment", "note", "state"]


class ExternalRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Where the incident lives outside: Jira issue id+key, Zendesk ticket id, Slack channel+ts."""

    id: str
    """Jira issue id, Zendesk ticket id, or the Slack root message's ts."""
    key: str | None = None
    """Jira issue key, e.g. OPS-12."""
    channel: str | None = None
    """Slack channel id."""
    url: str | None = None
    """Where a person opens it: Jira browse URL, Zendesk agent URL, Slack archive link."""


class Lease(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Which replica may touch the outside system for this incident, until when (unix seconds)."""

    owner: str
    expires: float


class Pending(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Written before a call that is unsafe to repeat, cleared once its result is recorded."""

    op: PendingOp
    since: float
    """Unix seconds when the call was about to be made."""
    tag: str | None = None
    """The marker the posted text carries, to find it again."""
    index: int | None = None
    """For a comment: its 1-based position in the incident's comments."""


class IncidentRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """What this worker has already done outside for one incident.

    `gc=False` here and in the parts: records form no reference cycles, and a replica keeps thousands of
    them (its cache; a dry run's whole store), which the collector would otherwise walk on every full pass.
    """

    incident_id: int
    ref: ExternalRef | None = None
    version: int = 0
    """Highest incidentversion fully applied."""
    attempted: int = 0
    """Highest incidentversion a sync has started on: an older event is covered by that newer snapshot."""
    comments_synced: int = 0
    """How many of the incident's comments are already outside, in order."""
    message: str | None = None
    status: str | None = None
    acknowledged: str | None = None
    deleted: bool = False
    posted: tuple[str, ...] = ()
    """Tags of notes already posted for the version being applied; cleared when it is recorded. A tuple, not
    a list: a list is one more object per record for the garbage collector to walk."""
    pending: Pending | None = None
    lease: Lease | None = None
    state_unsure_since: float | None = None
    """Set when a replica takes over a lapsed lease while a post or create was pending: state calls its
    owner had in flight may still land until this time plus the grace, so none of ours goes first."""
    shown: str | None = None
    """A digest of what the object last showed after a refresh (Slack's root message): an unchanged one
    needs no refresh call."""
    acted: str | None = None
    """Who made the last change of status or acknowledgement, e.g. `acknowledged by slack:alice`."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(IncidentRecord)


def encode_record(record: IncidentRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(raw: bytes) -> IncidentRecord:
    return _decoder.decode(raw)


def lease_blocks(record: IncidentRecord, owner: str, now: float) -> bool:
    """True when another replica holds an unexpired lease."""
    return record.lease is not None and record.lease.owner != owner and record.lease.expires > now


def with_lease(record: IncidentRecord, owner: str, now: float, ttl: float) -> IncidentRecord:
    return msgspec.structs.replace(record, lease=Lease(owner=owner, expires=now + ttl))


def without_lease(record: IncidentRecord) -> IncidentRecord:
    return msgspec.structs.replace(record, lease=None)


def is_stale(record: IncidentRecord, incidentversion: int) -> bool:
    # An event older than one already being applied must not apply its older snapshot over it.
    return incidentversion <= record.version or incidentversion < record.attempted


def applied(record: IncidentRecord, incidentversion: int) -> IncidentRecord:
    """The record once a version is fully applied: nothing pending, lease released."""
    return msgspec.structs.replace(record, version=incidentversion, pending=None, posted=(), lease=None)


def comment_tag(incident_id: int, position: int) -> str:
    return f"[incident-{incident_id} #{position}]"


def note_tag(incident_id: int, version: int, kind: str) -> str:
    return f"[incident-{incident_id} v{version} {kind}]"


def incident_label(incident_id: int) -> str:
    """The tag that finds the outside object again: Jira label, Zendesk external_id."""
    return f"incident-{incident_id}"


class ErrorRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The last failure of one stream message (key `error_key(seq)`), for the event handler to dead-letter."""

    error: str = "unknown"
    worker: str = ""
    deliveries: int = 0
    time: str = ""


def error_record(error: str, worker: str, deliveries: int) -> ErrorRecord:
    return ErrorRecord(error=error[:2000], worker=worker, deliveries=deliveries, time=datetime.now(UTC).isoformat())


_error_decoder = msgspec.json.Decoder(ErrorRecord)


def encode_error(error: ErrorRecord) -> bytes:
    return _encoder.encode(error)


def decode_error(raw: bytes) -> ErrorRecord:
    return _error_decoder.decode(raw)
