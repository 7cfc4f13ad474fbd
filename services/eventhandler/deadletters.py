"""Dead letters: copy each message a worker gave up on to DEADLETTERS, with the worker's last error.

JetStream announces a message that reached a consumer's max deliveries, or that a worker terminated,
with an advisory. Advisories are core NATS messages, not persisted: one published while no event
handler is connected is lost, and its message stays unnoticed in INCIDENTS (it is still there, so it
can be found again by stream sequence). Replicas share the advisories through a queue group, and the
DLQ copy's Nats-Msg-Id makes a repeated copy a no-op.
"""

from __future__ import annotations

import asyncio

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.eventhandler.metrics import Metrics
from shared.events import MSG_ID_HEADER, REQUEST_ID_HEADER, STREAM, TRACEPARENT_HEADER
from shared.jetstream import (
    DEADLETTER_STREAM,
    WORKER_NAME,
    deadletter_subject,
    error_key,
    refs_bucket,
)
from shared.webhooks import DELIVERIES_STREAM, WEBHOOK_WORKER, decode_attempt, deliveries_subject

log = structlog.get_logger(__name__)

WORKER_HEADER = "Incidents-Worker"
STREAM_SEQ_HEADER = "Incidents-Stream-Seq"
DELIVERIES_HEADER = "Incidents-Deliveries"
ERROR_HEADER = "Incidents-Error"
REASON_HEADER = "Incidents-Reason"
SUBJECT_HEADER = "Incidents-Subject"
CARRIED_HEADERS = (REQUEST_ID_HEADER, TRACEPARENT_HEADER)

ADVISORIES = {
    f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM}.*": "max_deliveries",
    f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{STREAM}.*": "terminated",
}
QUEUE_GROUP = "eventhandler-deadletters"
MAX_ERROR_LENGTH = 2000
WEBHOOK_CONSUMER_PREFIX = WEBHOOK_WORKER + "-"
RETRY_DELAYS = (0.2, 1.0, 3.0)
TRANSIENT = (nats.errors.Error, TimeoutError)


class Advisory(msgspec.Struct):
    consumer: str
    stream_seq: int
    deliveries: int = 0


class ErrorRecord(msgspec.Struct):
    error: str = "unknown"


def header_value(text: str) -> str:
    """One ASCII line: nats-py reads stored headers back with a parser that mangles other bytes."""
    return " ".join(text.split())[:MAX_ERROR_LENGTH].encode("ascii", "backslashreplace").decode()


class DeadLetters:
    def __init__(self, js: JetStreamContext, metrics: Metrics) -> None:
        self._js = js
        self._metrics = metrics

    async def subscribe(self, nc: Client) -> list[Subscription]:
        return [await nc.subscribe(subject, queue=QUEUE_GROUP, cb=self.on_advisory) for subject in ADVISORIES]

    async def on_advisory(self, msg: Msg) -> None:
        reason = ADVISORIES[msg.subject.rsplit(".", 1)[0] + ".*"]
        advisory = msgspec.json.decode(msg.data, type=Advisory)
        bound = log.bind(worker=advisory.consumer, stream_seq=advisory.stream_seq, reason=reason)
        if not WORKER_NAME.match(advisory.consumer):
            bound.warning("advisory for a consumer that is no worker, ignored")
            return
        for delay in (*RETRY_DELAYS, None):
            try:
                await self.dead_letter(advisory.consumer, advisory.stream_seq, advisory.deliveries, reason)
                return
            except NotFoundError:
                bound.error("dead message no longer in the stream, not dead-lettered")
                return
            except TRANSIENT as exc:
                if delay is None:
                    bound.error("dead-lettering failed, advisory lost", error=repr(exc))
                    self._metrics.inc("eventhandler_deadletter_failures_total")
                    return
                await asyncio.sleep(delay)  # backoff before retrying JetStream

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
            return msgspec.json.decode(raw, type=ErrorRecord).error
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
