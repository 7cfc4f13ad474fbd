"""The incident aggregate: its transitions, their rules, and the events each change records. No I/O."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from shared.events import EventType

MAX_MESSAGE_LENGTH = 10_000
MAX_COMMENT_LENGTH = 10_000
MAX_COMMENTS_PER_CHANGE = 100
MAX_DEDUP_KEY_LENGTH = 255
MAX_SOURCE_LENGTH = 255
MAX_LABELS = 64
MAX_LABEL_KEY_LENGTH = 128
MAX_LABEL_VALUE_LENGTH = 1024
# Text must hold something besides ASCII whitespace; written so Python and JSON Schema (ECMA) agree.
NOT_BLANK = r"[^ \t\n\r\f\v]"


class Status(enum.StrEnum):
    UNRESOLVED = "unresolved"
    RESOLVED = "resolved"


class Acknowledged(enum.StrEnum):
    NO = "no"
    YES = "yes"


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class DomainError(ValueError):
    """A change the incident's rules refuse."""


class InvalidInput(DomainError):
    """A message or comment that is empty or too long."""


class IncidentDeleted(DomainError):
    """The incident was deleted; it accepts no more changes."""


@dataclass(frozen=True, slots=True)
class AlertFields:
    """Where an incident came from: severity, source, labels and the key that deduplicates its alerts."""

    severity: Severity | None = None
    source: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    """Sorted (key, value) pairs, so that equal label sets compare equal."""
    dedup_key: str | None = None

    @classmethod
    def of(
        cls,
        severity: Severity | None = None,
        source: str | None = None,
        labels: dict[str, str] | None = None,
        dedup_key: str | None = None,
    ) -> AlertFields:
        fields = cls(severity, source, tuple(sorted((labels or {}).items())), dedup_key)
        fields.validate()
        return fields

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def validate(self) -> None:
        if self.source is not None:
            _clean(self.source, "source", MAX_SOURCE_LENGTH)
        if self.dedup_key is not None:
            _clean(self.dedup_key, "dedup_key", MAX_DEDUP_KEY_LENGTH)
        if len(self.labels) > MAX_LABELS:
            raise InvalidInput(f"at most {MAX_LABELS} labels")
        for key, value in self.labels:
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidInput("labels must map strings to strings")
            if not key or len(key) > MAX_LABEL_KEY_LENGTH:
                raise InvalidInput(f"label names must be 1 to {MAX_LABEL_KEY_LENGTH} characters")
            if len(value) > MAX_LABEL_VALUE_LENGTH:
                raise InvalidInput(f"label values must be at most {MAX_LABEL_VALUE_LENGTH} characters")


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded change: its event type, the version it produced, and the state right after it."""

    type: EventType
    version: int
    at: datetime
    message: str
    status: Status
    acknowledged: Acknowledged
    comments: tuple[str, ...]
    comment: str | None = None
    alert: AlertFields = AlertFields()


def firing_after(current: frozenset[str], firing: frozenset[str], partial: bool) -> frozenset[str]:
    """The alerts of a group firing after a notification; with alerts left out (`partial`, Alertmanager's
    truncatedAlerts), a missing alert is not a resolved one."""
    return firing | current if partial else firing


def _clean(text: str, what: str, limit: int) -> str:
    if not isinstance(text, str) or not re.search(NOT_BLANK, text):
        raise InvalidInput(f"{what} must not be empty")
    if len(text) > limit:
        raise InvalidInput(f"{what} must be at most {limit} characters")
    return text


@dataclass(slots=True)
class Incident:
    message: str
    status: Status = Status.UNRESOLVED
    acknowledged: Acknowledged = Acknowledged.NO
    comments: list[str] = field(default_factory=list)
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    id: int | None = None
    alert: AlertFields = field(default_factory=AlertFields)
    firing: frozenset[str] = frozenset()
    """Fingerprints of the alerts firing in the incident's alert group (Alertmanager); not in events."""
    alert_count: int = 0
    """Alerts (triggers, notifications) received for this incident; counted without events."""
    last_alert_at: datetime | None = None
    integration: str | None = None
    """The integration whose alerts opened it (`alertmanager` or a name from INTEGRATION_KEYS)."""
    dedup_owner: str = ""
    """Who the dedup key belongs to (an integration, see `intake.service`; "" for the API's own clients): the
    same key from another owner is another incident."""
    changes: list[Change] = field(default_factory=list)
    """Changes recorded since the incident was loaded; the repository writes them to the outbox."""

    @classmethod
    def open(cls, message: str, now: datetime, alert: AlertFields | None = None) -> Incident:
        incident = cls(message=_clean(message, "message", MAX_MESSAGE_LENGTH), created_at=now, updated_at=now)
        if alert is not None:
            alert.validate()
            incident.alert = alert
        incident._record(EventType.CREATED, now)
        return incident

    @property
    def open_dedup_key(self) -> str | None:
        """The dedup key while it deduplicates: at most one open incident holds it."""
        if self.deleted or self.status is Status.RESOLVED:
            return None
        return self.alert.dedup_key

    def set_alert_fields(self, alert: AlertFields, now: datetime) -> None:
        """Change severity, source, labels or dedup key: one `updated` event, like a message edit."""
        alert.validate()
        self._check_alive()
        if alert != self.alert:
            self.alert = alert
            self._record(EventType.UPDATED, now)

    def track_alerts(self, firing: frozenset[str], joined: list[str], resolved: list[str], now: datetime) -> None:
        """An alert group changed while it fires: remember who fires, and note joins and resolves once."""
        self._check_alive()
        self.firing = firing
        self.last_alert_at = now
        lines = [f"Alert firing: {text}" for text in joined] + [f"Alert resolved: {text}" for text in resolved]
        if lines:
            text = "\n".join(lines)
            self.comment(text[:MAX_COMMENT_LENGTH], now)

    def count_alert(self, now: datetime) -> None:
        """One more alert for this incident: counted, no event."""
        self.alert_count += 1
        self.last_alert_at = now

    def edit_message(self, message: str, now: datetime) -> None:
        message = _clean(message, "message", MAX_MESSAGE_LENGTH)
        self._check_alive()
        if message != self.message:
            self.message = message
            self._record(EventType.UPDATED, now)

    def acknowledge(self, now: datetime) -> None:
        self._check_alive()
        if self.acknowledged is Acknowledged.NO:
            self.acknowledged = Acknowledged.YES
            self._record(EventType.ACKNOWLEDGED, now)

    def unacknowledge(self, now: datetime) -> None:
        self._check_alive()
        if self.acknowledged is Acknowledged.YES:
            self.acknowledged = Acknowledged.NO
            self._record(EventType.UNACKNOWLEDGED, now)

    def resolve(self, now: datetime) -> None:
        self._check_alive()
        if self.status is Status.UNRESOLVED:
            self.status = Status.RESOLVED
            self._record(EventType.RESOLVED, now)

    def reopen(self, now: datetime) -> None:
        self._check_alive()
        if self.status is Status.RESOLVED:
            self.status = Status.UNRESOLVED
            self._record(EventType.REOPENED, now)

    def resolve_when_quiet(self, quiet_since: datetime, now: datetime) -> bool:
        """Auto-resolve: resolve an open incident whose last alert came before `quiet_since`."""
        self._check_alive()
        last = self.last_alert_at
        if self.status is Status.RESOLVED or last is None or last > quiet_since:
            return False
        self.comment(f"Resolved automatically: no alert since {last.isoformat(timespec='seconds')}.", now)
        self.resolve(now)
        return True

    def comment(self, text: str, now: datetime) -> None:
        text = _clean(text, "comment", MAX_COMMENT_LENGTH)
        self._check_alive()
        self.comments.append(text)
        self._record(EventType.COMMENTED, now, comment=text)

    def delete(self, now: datetime) -> None:
        self._check_alive()
        self.deleted = True
        self._record(EventType.DELETED, now)

    def apply(self, update: IncidentUpdate, now: datetime) -> None:
        """Apply a PUT: message, alert fields, acknowledgement, comments, then status — one event each."""
        update.validate()
        if update.message is not None:
            self.edit_message(update.message, now)
        if update.alert is not None:
            self.set_alert_fields(update.alert.applied_to(self.alert), now)
        if update.acknowledged is Acknowledged.YES:
            self.acknowledge(now)
        elif update.acknowledged is Acknowledged.NO:
            self.unacknowledge(now)
        for text in update.comments:
            self.comment(text, now)
        if update.status is Status.RESOLVED:
            self.resolve(now)
        elif update.status is Status.UNRESOLVED:
            self.reopen(now)

    def _check_alive(self) -> None:
        if self.deleted:
            raise IncidentDeleted("incident was deleted")

    def _record(self, type_: EventType, now: datetime, comment: str | None = None) -> None:
        self.version += 1
        self.updated_at = now
        self.changes.append(
            Change(
                type=type_,
                version=self.version,
                at=now,
                message=self.message,
                status=self.status,
                acknowledged=self.acknowledged,
                comments=tuple(self.comments),
                comment=comment,
                alert=self.alert,
            )
        )


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """What a PUT asks for; every field optional, but not all absent."""

    message: str | None = None
    acknowledged: Acknowledged | None = None
    status: Status | None = None
    comments: tuple[str, ...] = ()
    alert: AlertUpdate | None = None

    def validate(self) -> None:
        nothing = self.message is None and self.acknowledged is None and self.status is None and not self.comments
        if nothing and (self.alert is None or self.alert.empty):
            raise InvalidInput(
                "nothing to update: give message, acknowledged, status, comments, severity, source, labels or dedup_key"
            )
        if len(self.comments) > MAX_COMMENTS_PER_CHANGE:
            raise InvalidInput(f"at most {MAX_COMMENTS_PER_CHANGE} comments per request")
        if self.message is not None:
            _clean(self.message, "message", MAX_MESSAGE_LENGTH)
        for text in self.comments:
            _clean(text, "comment", MAX_COMMENT_LENGTH)
        if self.alert is not None:
            self.alert.applied_to(AlertFields())


class Keep(enum.Enum):
    """A PUT left the field out: keep its value."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class AlertUpdate:
    """The alert fields a PUT names; `None` clears one, fields it leaves out keep their value."""

    severity: Severity | Keep | None = KEEP
    source: str | Keep | None = KEEP
    labels: dict[str, str] | Keep | None = KEEP
    dedup_key: str | Keep | None = KEEP

    @property
    def empty(self) -> bool:
        return all(value is KEEP for value in (self.severity, self.source, self.labels, self.dedup_key))

    def applied_to(self, current: AlertFields) -> AlertFields:
        return AlertFields.of(
            current.severity if isinstance(self.severity, Keep) else self.severity,
            current.source if isinstance(self.source, Keep) else self.source,
            current.label_map if isinstance(self.labels, Keep) else self.labels,
            current.dedup_key if isinstance(self.dedup_key, Keep) else self.dedup_key,
        )
