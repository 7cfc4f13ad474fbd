"""Names and configs of the JetStream objects every service agrees on."""

from __future__ import annotations

import re

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

from shared.events import ALL_SUBJECTS, STREAM, SUBJECT_PREFIX

DEADLETTER_STREAM = "DEADLETTERS"
DEADLETTER_SUBJECT_PREFIX = "deadletter."
# JetStream's advisories of messages the workers' consumers gave up on are core NATS messages; this
# stream keeps them until the event handler has dead-lettered each one, so none is lost while it is down.
ADVISORY_STREAM = "DEADLETTER_ADVISORIES"
ADVISORY_CONSUMER = "eventhandler"
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM}.*"
TERMINATED_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{STREAM}.*"
ADVISORY_MAX_AGE_SECONDS = 30 * 24 * 3600.0  # as long as INCIDENTS keeps the messages they point at
# Request-reply subjects served by the `eventhandler` micro service.
EVENTHANDLER_SERVICE = "eventhandler"
PUBLISH_SUBJECT = "eventhandler.publish"
SUBSCRIPTIONS_GET_SUBJECT = "eventhandler.subscriptions.get"
SUBSCRIPTIONS_SET_SUBJECT = "eventhandler.subscriptions.set"
DEADLETTERS_LIST_SUBJECT = "eventhandler.deadletters.list"
DEADLETTERS_REDRIVE_SUBJECT = "eventhandler.deadletters.redrive"

WORKER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Workers' consumers redeliver without a count limit: a worker gives up on an event by time
# (WORKER_RETRY_BUDGET_SECONDS since it was stored) and terminates it.
UNLIMITED_DELIVERIES = -1
ACK_WAIT_SECONDS = 60.0
DUPLICATE_WINDOW_SECONDS = 300.0


def incidents_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[SUBJECT_PREFIX + ">"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=30 * 24 * 3600.0,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )


def deadletter_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=DEADLETTER_STREAM,
        subjects=[DEADLETTER_SUBJECT_PREFIX + ">"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=90 * 24 * 3600.0,
        num_replicas=replicas,
    )


def advisory_stream_config(replicas: int = 1) -> StreamConfig:
    """A work queue: each advisory is removed once the event handler acked it (dead-lettered or dismissed)."""
    return StreamConfig(
        name=ADVISORY_STREAM,
        subjects=[MAX_DELIVERIES_ADVISORY, TERMINATED_ADVISORY],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        max_age=ADVISORY_MAX_AGE_SECONDS,
        num_replicas=replicas,
    )


def advisory_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=ADVISORY_CONSUMER,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
        max_deliver=UNLIMITED_DELIVERIES,
    )


def refs_bucket(worker: str) -> str:
    """The worker's own KV bucket: external references per incident and last errors per message."""
    return f"refs-{worker}"


def refs_bucket_config(worker: str, replicas: int = 1) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=refs_bucket(worker),
        description=f"external references and last errors of the {worker} worker",
        history=1,
        storage=StorageType.FILE,
        replicas=replicas,
    )


def ref_key(incident_id: int) -> str:
    return f"incident.{incident_id}"


def error_key(stream_seq: int) -> str:
    return f"error.{stream_seq}"


def deadletter_subject(worker: str) -> str:
    return DEADLETTER_SUBJECT_PREFIX + worker


def valid_subjects() -> frozenset[str]:
    return frozenset(ALL_SUBJECTS)


# A filter that matches no event type: an empty filter list would mean "everything".
NO_EVENTS_SUBJECT = SUBJECT_PREFIX + "none"


def worker_filter_subjects(subjects: list[str]) -> list[str]:
    return sorted(set(subjects)) or [NO_EVENTS_SUBJECT]


def subscriptions_from_filters(filters: list[str] | None) -> list[str]:
    return sorted(s for s in (filters or []) if s != NO_EVENTS_SUBJECT)


def worker_consumer_config(
    worker: str,
    subjects: list[str],
    *,
    ack_wait: float = ACK_WAIT_SECONDS,
    max_deliver: int = UNLIMITED_DELIVERIES,
) -> ConsumerConfig:
    """The durable pull consumer a worker reads: named after it, filtered to its subscriptions."""
    return ConsumerConfig(
        durable_name=worker,
        filter_subjects=worker_filter_subjects(subjects),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
    )
