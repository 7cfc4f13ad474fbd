"""The dead-letter queue's read side: list the DEADLETTERS entries, and redrive them onto INCIDENTS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from services.eventhandler.deadletters import (
    CARRIED_HEADERS,
    DELIVERIES_HEADER,
    ERROR_HEADER,
    REASON_HEADER,
    STREAM_SEQ_HEADER,
    SUBJECT_HEADER,
    WORKER_HEADER,
)
from services.eventhandler.errors import NotFoundError as DeadLetterNotFound
from services.eventhandler.metrics import Metrics
from services.eventhandler.schemas import DeadLetter
from shared.events import MSG_ID_HEADER, REDRIVE_HEADER, STREAM
from shared.jetstream import DEADLETTER_STREAM, DEADLETTER_SUBJECT_PREFIX, deadletter_subject

log = structlog.get_logger(__name__)


class _Head(msgspec.Struct):
    id: str = ""
    type: str = ""


class DeadLetterQueue:
    def __init__(self, js: JetStreamContext, metrics: Metrics) -> None:
        self._js = js
        self._metrics = metrics

    async def list_entries(self, worker: str | None, limit: int, after: int = 0) -> list[DeadLetter]:
        items: list[DeadLetter] = []
        async for message in self._iterate(worker, after):
            items.append(to_dead_letter(message))
            if len(items) >= limit:
                break
        return items

    async def redrive_one(self, seq: int) -> int:
        try:
            message = await self._js.get_msg(DEADLETTER_STREAM, seq=seq)
        except NotFoundError:
            raise DeadLetterNotFound(f"dead letter not found: {seq}") from None
        await self._redrive(message)
        return 1

    async def redrive_worker(self, worker: str) -> int:
        count = 0
        async for message in self._iterate(worker, 0):
            await self._redrive(message)
            count += 1
        return count

    async def _redrive(self, message: RawStreamMsg) -> None:
        headers = message.headers or {}
        worker = headers[WORKER_HEADER]
        body = message.data or b""
        event = msgspec.json.decode(body, type=_Head)
        out = {name: value for name in CARRIED_HEADERS if (value := headers.get(name))}
        out |= {MSG_ID_HEADER: f"{event.id}:redrive:{message.seq}", REDRIVE_HEADER: worker}
        subject = headers.get(SUBJECT_HEADER) or event.type
        await self._js.publish(subject, body, headers=out, stream=STREAM)
        assert message.seq is not None
        # After the publish: a crash in between redrives again, and the Nats-Msg-Id absorbs it.
        await self._js.delete_msg(DEADLETTER_STREAM, message.seq)
        self._metrics.inc("eventhandler_redriven_total", worker=worker)
        log.info("dead letter redriven", worker=worker, event_id=event.id, dlq_seq=message.seq)

    async def _iterate(self, worker: str | None, after: int) -> AsyncIterator[RawStreamMsg]:
        subject = deadletter_subject(worker) if worker else DEADLETTER_SUBJECT_PREFIX + ">"
        seq = after + 1
        while True:
            try:
                message = await self._js.get_msg(DEADLETTER_STREAM, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return
            yield message
            assert message.seq is not None
            seq = message.seq + 1


def to_dead_letter(message: RawStreamMsg) -> DeadLetter:
    headers = message.headers or {}
    assert message.seq is not None
    return DeadLetter(
        seq=message.seq,
        worker=headers.get(WORKER_HEADER, ""),
        stream_seq=int(headers.get(STREAM_SEQ_HEADER, 0)),
        deliveries=int(headers.get(DELIVERIES_HEADER, 0)),
        error=headers.get(ERROR_HEADER, "unknown"),
        reason=headers.get(REASON_HEADER, ""),
        time=message.time or datetime.now(UTC),
        event=msgspec.Raw(message.data or b"{}"),
    )
