"""Dead letters: copy each message a worker gave up on to DEADLETTERS, with the worker's last error.

JetStream announces a message that reached a consumer's max deliveries, or that a worker terminated,
with an advisory. Advisories are core NATS messages; the DEADLETTER_ADVISORIES stream stores them,
so one published while no event handler runs (or while it is busy) waits there. The event handler
reads that stream with a durable pull consumer shared by its replicas and acks an advisory only once
its message is in DEADLETTERS; the DLQ copy's Nats-Msg-Id makes a repeated copy a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.eventhandler.metrics import Metrics
from shared.events import MSG_ID_HEADER, REQUEST_ID_HEADER, STREAM, TRACEPARENT_HEADER
from shared.jetstream import (
    ADVISORY_CONSUMER,
    ADVISORY_STREAM,
    DEADLETTER_STREAM,
    MAX_DELIVERIES_ADVISORY,
    TERMINATED_ADVISORY,
    WORKER_NAME,
    deadletter_subject,
    error_key,
    refs_bucket,
)
from shared.records import decode_error
from shared.webhooks import DELIVERIES_STREAM, WEBHOOK_WORKER, decode_attempt, deliveries_subject

log = structlog.get_logger(__name__)

WORKER_HEADER = "Incidents-Worker"
STREAM_SEQ_HEADER = "Incidents-Stream-Seq"
DELIVERIES_HEADER = "Incidents-Deliveries"
ERROR_HEADER = "Incidents-Error"
REASON_HEADER = "Incidents-Reason"
SUBJECT_HEADER = "Incidents-Subject"
CARRIED_HEADERS = (REQUEST_ID_HEADER, TRACEPARENT_HEADER)

ADVISORIES = {MAX_DELIVERIES_ADVISORY: "max_deliveries", TERMINATED_ADVISORY: "terminated"}
MAX_ERROR_LENGTH = 2000
FETCH_BATCH = 100
FETCH_TIMEOUT = 2.0
FETCH_WATCHDOG = FETCH_TIMEOUT + 5.0  # nats-py's fetch can hang past its own timeout (nats.py#933)
RETRY_DELAY_MAX = 30.0
WEBHOOK_CONSUMER_PREFIX = WEBHOOK_WORKER + "-"
TRANSIENT = (nats.errors.Error, TimeoutError)


class Advisory(msgspec.Struct):
    consumer: str
    stream_seq: int
    deliveries: int = 0


def header_value(text: str) -> str:
    """One ASCII line: nats-py reads stored headers back with a parser that mangles other bytes."""
    return " ".join(text.split())[:MAX_ERROR_LENGTH].encode("ascii", "backslashreplace").decode()


class DeadLetters:
    def __init__(self, js: JetStreamContext, metrics: Metrics) -> None:
        self._js = js
        self._metrics = metrics

    async def consume(self, stop: asyncio.Event) -> None:
        """Dead-letter the stored advisories until `stop` is set."""
        sub = await self._js.pull_subscribe_bind(ADVISORY_CONSUMER, ADVISORY_STREAM)
        try:
            while not stop.is_set():
                try:
                    msgs = await asyncio.wait_for(sub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT), FETCH_WATCHDOG)
                except TimeoutError:
                    continue  # nothing stored: an empty fetch raises TimeoutError
                except (nats.errors.Error, nats.js.errors.Error) as exc:
                    log.warning("fetching advisories failed", error=repr(exc))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    continue
                for msg in msgs:
                    await self.on_advisory(msg)
        finally:
            with contextlib.suppress(*TRANSIENT):
                await sub.unsubscribe()

    async def on_advisory(self, msg: Msg) -> None:
        """Ack once the message is dead-lettered (or can't be); nak with a delay when JetStream is in trouble."""
        reason = ADVISORIES.get(msg.subject.rsplit(".", 1)[0] + ".*")
        try:
            advisory = msgspec.json.decode(msg.data, type=Advisory)
        except msgspec.DecodeError as exc:
            log.error("undecodable advisory dropped", subject=msg.subject, error=str(exc))
            await self._settle(msg.ack())
            return
        bound = log.bind(worker=advisory.consumer, stream_seq=advisory.stream_seq, reason=reason)
        if reason is None or not WORKER_NAME.match(advisory.consumer):
            bound.warning("advisory for a consumer that is no worker, ignored", subject=msg.subject)
            await self._settle(msg.ack())
            return
        try:
            await self.dead_letter(advisory.consumer, advisory.stream_seq, advisory.deliveries, reason)
        except NotFoundError:
            bound.error("dead message no longer in the stream, not dead-lettered")
        except TRANSIENT as exc:
            delay = min(RETRY_DELAY_MAX, 2.0 ** min(msg.metadata.num_delivered, 8))
            bound.warning("dead-lettering failed; the advisory is kept and retried", error=repr(exc), delay=delay)
            self._metrics.inc("eventhandler_deadletter_failures_total")
            await self._settle(msg.nak(delay=delay))
            return
        await self._settle(msg.ack())

    @staticmethod
    async def _settle(settlement: Awaitable[None]) -> None:
        try:
            await settlement
        except TRANSIENT as exc:  # unsettled: the advisory comes back after AckWait
            log.warning("could not settle an advisory", error=repr(exc))

    async def dead_letter(self, worker: str, stream_seq: int, deliveries: int, reason: str) -> None:
        original = await self._js.get_msg(STREAM, seq=stream_seq)
        error = await self.last_error(worker, stream_seq)
        headers = {name: value for name in CARRIED_HEADERS if (value := (original.headers or {}).get(name))}
        headers |= {
            MSG_ID_HEADER: f"dlq:{worker}:{stream_seq}",
            WORKER_HEADER: worker,
            STREAM_SEQ_HEADER: str(stream_seq),
            DELIVERIES_HEADER: str(deliveries),
            ERROR_HEADER: header_value(error),
            REASON_HEADER: reason,
            SUBJECT_HEADER: original.subject or "",
        }
        ack = await self._js.publish(
            deadletter_subject(worker), original.data or b"", headers=headers, stream=DEADLETTER_STREAM
        )
        if not ack.duplicate:
            self._metrics.inc("eventhandler_deadletters_total", worker=worker, reason=reason)
            log.warning(
                "message dead-lettered",
                worker=worker,
                stream_seq=stream_seq,
                dlq_seq=ack.seq,
                deliveries=deliveries,
                reason=reason,
                error=error,
            )

    async def last_error(self, worker: str, stream_seq: int) -> str:
        """The worker's last error for this message, from its KV bucket; "unknown" if it wrote none."""
        if worker.startswith(WEBHOOK_CONSUMER_PREFIX):
            return await self.last_webhook_error(worker.removeprefix(WEBHOOK_CONSUMER_PREFIX))
        try:
            kv = await self._js.key_value(refs_bucket(worker))
            entry = await kv.get(error_key(stream_seq))
        except NotFoundError:
            return "unknown"
        raw = entry.value or b""
        try:
            return decode_error(raw).error
        except msgspec.DecodeError:
            return raw.decode(errors="replace") or "unknown"

    async def last_webhook_error(self, endpoint_id: str) -> str:
        """A webhook endpoint's consumer: the last attempt in the delivery log says what went wrong."""
        try:
            entry = await self._js.get_msg(DELIVERIES_STREAM, subject=deliveries_subject(endpoint_id))
            attempt = decode_attempt(entry.data or b"")
        except (NotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            return "unknown"
        return attempt.error or f"HTTP {attempt.status_code}"
