"""Webhooks out: the names, records and limits that the API and the `webhooks` worker share.

Endpoints live in the JetStream key-value bucket `webhook-endpoints` (one key per endpoint, written by
the API, watched by the worker). Each endpoint has its own durable consumer `webhooks-<id>` on
INCIDENTS. Every delivery attempt is recorded on the stream WEBHOOK_DELIVERIES, subject
`webhooks.deliveries.<id>`, which keeps the latest DELIVERY_LOG_KEEP attempts per endpoint.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime, timedelta

import msgspec
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from shared.jetstream import worker_filter_subjects

WEBHOOK_WORKER = "webhooks"
ENDPOINTS_BUCKET = "webhook-endpoints"
DELIVERIES_STREAM = "WEBHOOK_DELIVERIES"
DELIVERIES_SUBJECT_PREFIX = "webhooks.deliveries."
# Core request-reply: the API asks a worker replica to send one event again, now.
REDELIVER_SUBJECT = "webhooks.redeliver"
REDELIVER_QUEUE = "webhooks"

DELIVERY_LOG_KEEP = 200
"""Attempts kept per endpoint in the delivery log (older ones are dropped by the stream)."""
DELIVERY_LOG_MAX_AGE_SECONDS = 30 * 24 * 3600.0
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1024
MAX_ERROR_LENGTH = 500
ENDPOINT_ID = re.compile(r"^[0-9a-f]{16}$")


class EndpointSecret(msgspec.Struct, frozen=True, kw_only=True):
    value: str
    """`whsec_` + base64 of SECRET_BYTES random bytes."""
    created_at: datetime
    expires_at: datetime | None = None
    """Set on the old secret when a new one is made: it keeps signing until then."""

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def __repr__(self) -> str:  # never print the value
        return f"EndpointSecret(created_at={self.created_at!r}, expires_at={self.expires_at!r})"


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook endpoint, as stored under `endpoint.<id>` in the bucket."""

    id: str
    url: str
    events: list[str]
    description: str = ""
    enabled: bool = True
    disabled_reason: str | None = None
    secrets: list[EndpointSecret]
    created_at: datetime
    updated_at: datetime

    def signing_secrets(self, now: datetime) -> list[str]:
        return [s.value for s in self.secrets if s.active(now)]

    def __repr__(self) -> str:
        # No url: it may carry a token (Slack-style incoming webhook URLs do).
        return f"Endpoint(id={self.id!r}, events={self.events!r}, enabled={self.enabled!r})"


class Attempt(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One delivery attempt, as the delivery log shows it."""

    endpoint_id: str
    event_id: str
    type: str
    incident_id: int
    incidentversion: int
    attempt: int
    """1 for the first try of this event at this endpoint, 2 for the first retry, ..."""
    outcome: str
    """delivered, retrying, dead_lettered (retry budget spent), disabled (410), or failed (a manual redelivery)."""
    time: datetime
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    next_attempt_in_seconds: float | None = None
    manual: bool = False
    """Sent by `POST /webhooks/{id}/deliveries/{event_id}/redeliver`, outside the retry schedule."""


class RedeliverRequest(msgspec.Struct, frozen=True, kw_only=True):
    endpoint_id: str
    event: str
    """The CloudEvent JSON, as stored in the event log."""


class RedeliverReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    attempt: Attempt | None = None
    error: str | None = None


def new_endpoint_id() -> str:
    return secrets.token_hex(8)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def rotate(endpoint: Endpoint, new: str, now: datetime, overlap: timedelta) -> Endpoint:
    """A new secret; the current ones keep signing for `overlap` (or less, if they expire sooner)."""
    kept = []
    for old in endpoint.secrets:
        if not old.active(now):
            continue
        expires = now + overlap
        if old.expires_at is not None and old.expires_at < expires:
            expires = old.expires_at
        kept.append(EndpointSecret(value=old.value, created_at=old.created_at, expires_at=expires))
    return msgspec.structs.replace(endpoint, secrets=[*kept, EndpointSecret(value=new, created_at=now)], updated_at=now)


def endpoint_key(endpoint_id: str) -> str:
    return f"endpoint.{endpoint_id}"


def consumer_name(endpoint_id: str) -> str:
    """The endpoint's own durable consumer on INCIDENTS (the contract's `<worker>-<partition>` shape)."""
    return f"{WEBHOOK_WORKER}-{endpoint_id}"


def deliveries_subject(endpoint_id: str) -> str:
    return DELIVERIES_SUBJECT_PREFIX + endpoint_id


_endpoint_encoder = msgspec.json.Encoder()
_endpoint_decoder = msgspec.json.Decoder(Endpoint)
_attempt_decoder = msgspec.json.Decoder(Attempt)


def encode(value: Endpoint | Attempt | RedeliverRequest | RedeliverReply) -> bytes:
    return _endpoint_encoder.encode(value)


def decode_endpoint(raw: bytes) -> Endpoint:
    return _endpoint_decoder.decode(raw)


def decode_attempt(raw: bytes) -> Attempt:
    return _attempt_decoder.decode(raw)


def endpoints_bucket_config(replicas: int = 1) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=ENDPOINTS_BUCKET,
        description="outbound webhook endpoints and their signing secrets",
        history=1,
        storage=StorageType.FILE,
        replicas=replicas,
    )


def deliveries_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=DELIVERIES_STREAM,
        subjects=[DELIVERIES_SUBJECT_PREFIX + "*"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_msgs_per_subject=DELIVERY_LOG_KEEP,
        max_age=DELIVERY_LOG_MAX_AGE_SECONDS,
        num_replicas=replicas,
    )


def endpoint_consumer_config(endpoint: Endpoint, ack_wait: float) -> ConsumerConfig:
    """Events of the endpoint's types stored since it was created, one unacknowledged at a time.

    `max_ack_pending=1` keeps the endpoint's deliveries in stream order (so in `incidentversion`
    order per incident); a retry waiting with `nak(delay)` holds back this endpoint only. There is
    no max_deliver: the worker gives up when the retry budget (a time) is spent, with `term`.
    """
    return consumer_config_for(endpoint.id, endpoint.events, endpoint.created_at, ack_wait)


def consumer_config_for(endpoint_id: str, events: list[str], created_at: datetime, ack_wait: float) -> ConsumerConfig:
    """endpoint_consumer_config from the fields the webhooks worker sends the event handler."""
    return ConsumerConfig(
        durable_name=consumer_name(endpoint_id),
        description=f"webhook endpoint {endpoint_id}",
        filter_subjects=worker_filter_subjects(events),
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=created_at,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=1,
    )
