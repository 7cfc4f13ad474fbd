"""Store a batch of events on JetStream: one incident's events in order, different incidents at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import msgspec
import nats.errors
import structlog

from services.eventhandler.metrics import Metrics
from shared import tracing
from shared.events import (
    MSG_ID_HEADER,
    REQUEST_ID_HEADER,
    STREAM,
    TRACEPARENT_HEADER,
    CloudEvent,
    decode_event,
    encode_event,
)
from shared.relay import EventError, PublishReply

log = structlog.get_logger(__name__)

# What a failed store raises: nats and JetStream errors, and our deadline running out.
PUBLISH_ERRORS = (nats.errors.Error, TimeoutError)


class Publisher(Protocol):
    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> bool:
        """Store one message and return True if JetStream already had its Nats-Msg-Id.

        Raises a nats.errors.Error when JetStream refuses or can't be reached; may wait for ever,
        so the caller bounds the wait.
        """
        ...


class _Head(msgspec.Struct):
    id: str = ""
    type: str = ""
    subject: str = ""


def event_headers(event: CloudEvent) -> dict[str, str]:
    headers = {MSG_ID_HEADER: event.id}
    if event.requestid:
        headers[REQUEST_ID_HEADER] = event.requestid
    if event.traceparent:
        headers[TRACEPARENT_HEADER] = event.traceparent
    return headers


class BatchPublisher:
    """Validates a batch and stores it; replies only with what JetStream acknowledged."""

    def __init__(self, publisher: Publisher, metrics: Metrics, *, timeout: float = 4.0) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._timeout = timeout

    async def publish(self, raws: Sequence[bytes | msgspec.Raw]) -> PublishReply:
        rejected: list[EventError] = []
        failed: list[EventError] = []
        order: list[str] = []
        chains: dict[str, list[CloudEvent]] = {}
        # An incident whose event was rejected: its later events wait behind it (per-incident order).
        halted: dict[str, str] = {}
        for index, raw in enumerate(raws):
            try:
                event = decode_event(raw)
            except ValueError as exc:  # msgspec.DecodeError/ValidationError, or an unknown event type
                head = _head(raw)
                error = str(exc) if isinstance(exc, msgspec.DecodeError) else f"unknown event type: {head.type}"
                rejected.append(EventError(id=head.id, error=f"event #{index}: {error}"))
                log.warning("event rejected", event_id=head.id, incident_id=head.subject, error=error)
                if head.subject:
                    halted.setdefault(head.subject, head.id)
                continue
            if event.subject in halted:
                error = f"not attempted: earlier event {halted[event.subject]} of incident {event.subject} was rejected"
                failed.append(EventError(id=event.id, error=error))
                continue
            order.append(event.id)
            chains.setdefault(event.subject, []).append(event)
        self._metrics.inc("eventhandler_events_rejected_total", len(rejected))
        deadline = asyncio.get_running_loop().time() + self._timeout
        outcomes = await asyncio.gather(*(self._chain(chain, deadline) for chain in chains.values()))
        stored: set[str] = set()
        for chain_stored, chain_failed in outcomes:
            stored.update(chain_stored)
            failed += chain_failed
        return PublishReply(stored=[i for i in dict.fromkeys(order) if i in stored], failed=failed, rejected=rejected)

    async def _chain(self, events: list[CloudEvent], deadline: float) -> tuple[list[str], list[EventError]]:
        """One incident's events, each acknowledged before the next: a failure never reorders them."""
        stored: list[str] = []
        try:
            async with asyncio.timeout_at(deadline):
                for event in events:
                    duplicate = await self._store(event)
                    stored.append(event.id)
                    log.info(
                        "event stored",
                        event_id=event.id,
                        incident_id=event.subject,
                        request_id=event.requestid,
                        type=event.type,
                        duplicate=duplicate,
                    )
                    log.debug(
                        "event stored",
                        event_id=event.id,
                        incident_id=event.subject,
                        request_id=event.requestid,
                        duplicate=duplicate,
                    )
                    self._metrics.inc("eventhandler_events_published_total", type=event.type)
                    if duplicate:
                        self._metrics.inc("eventhandler_events_duplicate_total", type=event.type)
                    else:
                        self._metrics.observe_response_time(event)
        except PUBLISH_ERRORS as exc:
            return stored, self._failed(events, len(stored), exc)
        return stored, []

    async def _store(self, event: CloudEvent) -> bool:
        if not tracing.recording():
            return await self._publisher.publish(event.type, encode_event(event), event_headers(event))
        # The event's own trace (the API request that recorded it) goes on here; the relay's request is a link.
        with tracing.tracer().start_as_current_span(
            f"{STREAM} publish",
            context=tracing.from_traceparent(event.traceparent),
            kind=tracing.SpanKind.PRODUCER,
            links=tracing.link_to_current_span(),
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "send",
                "messaging.destination.name": event.type,
                "messaging.message.id": event.id,
                "incidents.incident_id": event.subject,
            },
        ) as span:
            duplicate = await self._publisher.publish(
                event.type, encode_event(event), tracing.inject(event_headers(event))
            )
            span.set_attribute("incidents.duplicate", duplicate)
            return duplicate

    def _failed(self, events: list[CloudEvent], position: int, exc: BaseException) -> list[EventError]:
        event = events[position]
        error = "timed out waiting for JetStream" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
        log.warning(
            "event not stored",
            event_id=event.id,
            incident_id=event.subject,
            request_id=event.requestid,
            error=error,
            skipped=len(events) - position - 1,
        )
        skipped = f"not attempted: earlier event {event.id} of incident {event.subject} failed"
        failed = [EventError(id=event.id, error=error)]
        failed += [EventError(id=later.id, error=skipped) for later in events[position + 1 :]]
        for item in events[position:]:
            self._metrics.inc("eventhandler_publish_failures_total", type=item.type)
        return failed


def _head(raw: bytes | msgspec.Raw) -> _Head:
    """The id and type of an event that failed validation, as far as they can be read."""
    try:
        return msgspec.json.decode(raw, type=_Head)
    except msgspec.DecodeError:
        return _Head()
