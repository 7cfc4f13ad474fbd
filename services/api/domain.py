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
# Text must hold something besides ASCII whitespace; written so Python and JSON Schema (ECMA) agree.
NOT_BLANK = r"[^ \t\n\r\f\v]"


class Status(enum.StrEnum):
    UNRESOLVED = "unresolved"
    RESOLVED = "resolved"


class Acknowledged(enum.StrEnum):
    NO = "no"
    YES = "yes"


class DomainError(ValueError):
    """A change the incident's rules refuse."""


class InvalidInput(DomainError):
    """A message or comment that is empty or too long."""


class IncidentDeleted(DomainError):
    """The incident was deleted; it accepts no more changes."""


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
    changes: list[Change] = field(default_factory=list)
    """Changes recorded since the incident was loaded; the repository writes them to the outbox."""

    @classmethod
    def open(cls, message: str, now: datetime) -> Incident:
        incident = cls(message=_clean(message, "message", MAX_MESSAGE_LENGTH), created_at=now, updated_at=now)
        incident._record(EventType.CREATED, now)
        return incident

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
        """Apply a PUT: message, then acknowledgement, then comments, then status — one event each."""
        update.validate()
        if update.message is not None:
            self.edit_message(update.message, now)
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
            )
        )


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """What a PUT asks for; every field optional, but not all absent."""

    message: str | None = None
    acknowledged: Acknowledged | None = None
    status: Status | None = None
    comments: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.message is None and self.acknowledged is None and self.status is None and not self.comments:
            raise InvalidInput("nothing to update: give message, acknowledged, status or comments")
        if len(self.comments) > MAX_COMMENTS_PER_CHANGE:
            raise InvalidInput(f"at most {MAX_COMMENTS_PER_CHANGE} comments per request")
        if self.message is not None:
            _clean(self.message, "message", MAX_MESSAGE_LENGTH)
        for text in self.comments:
            _clean(text, "comment", MAX_COMMENT_LENGTH)
