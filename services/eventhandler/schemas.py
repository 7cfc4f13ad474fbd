"""Request and reply bodies of the `eventhandler` micro service endpoints."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Requests reject unknown fields so a typo is a 400, not a silent default."""


class SubscriptionSetRequest(Base):
    worker: str
    events: list[str]
    start: str | None = None
    """null keeps the consumer's position; "now", "all" or an RFC 3339 time (re)creates it from there."""


class SubscriptionReply(msgspec.Struct, kw_only=True):
    worker: str
    events: list[str]


class DeadLetterListRequest(Base):
    worker: str | None = None
    limit: int = 100
    after: int = 0
    """Only entries with a DLQ sequence above this one: pass the last `seq` seen to page on."""


class DeadLetter(msgspec.Struct, kw_only=True):
    seq: int
    worker: str
    stream_seq: int
    deliveries: int
    error: str
    reason: str
    time: datetime
    event: msgspec.Raw


class DeadLetterListReply(msgspec.Struct, kw_only=True):
    items: list[DeadLetter]


class RedriveRequest(Base):
    seq: int | None = None
    worker: str | None = None


class RedriveReply(msgspec.Struct, kw_only=True):
    redriven: int
