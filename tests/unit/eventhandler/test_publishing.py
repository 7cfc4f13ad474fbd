"""The batch publisher's per-incident chains, checked against a fake JetStream publisher."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from nats.js.errors import APIError

from services.eventhandler.metrics import Metrics
from services.eventhandler.publishing import BatchPublisher, Publisher
from shared.events import MSG_ID_HEADER, REQUEST_ID_HEADER, TRACEPARENT_HEADER, EventType, decode_event
from tests.unit.eventhandler.factory import make_event, raw


class FakePublisher:
    """Stores messages in a list like a stream; fails or stalls on chosen event ids."""

    def __init__(self, fail: set[str] = frozenset(), stall: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.stored: list[tuple[str, bytes, dict[str, str]]] = []
        self.seen_ids: set[str] = set()
        self.attempted: list[str] = []
        self.fail = fail
        self.stall = stall

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> bool:
        msg_id = headers[MSG_ID_HEADER]
        self.attempted.append(msg_id)
        await asyncio.sleep(0)  # let other incidents' chains interleave, as on a real connection
        if msg_id in self.stall:
            await asyncio.Event().wait()
        if msg_id in self.fail:
            raise APIError(code=400, description="message size exceeds maximum allowed", err_code=10054)
        if msg_id in self.seen_ids:
            return True
        self.seen_ids.add(msg_id)
        self.stored.append((subject, payload, headers))
        return False


def batch(publisher: Publisher, timeout: float = 5.0) -> tuple[BatchPublisher, Metrics]:
    metrics = Metrics()
    return BatchPublisher(publisher, metrics, timeout=timeout), metrics


async def test_stores_every_event_with_subject_headers_and_unchanged_body() -> None:
    events = [
        make_event(1, 1, requestid="req-1", traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        make_event(1, 2, EventType.ACKNOWLEDGED),
    ]
    fake = FakePublisher()
    publisher, metrics = batch(fake)

    reply = await publisher.publish([raw(e) for e in events])

    assert reply.stored == [e.id for e in events] and not reply.failed and not reply.rejected
    assert [s[0] for s in fake.stored] == ["incident.created", "incident.acknowledged"]
    assert [decode_event(s[1]) for s in fake.stored] == events
    assert fake.stored[0][2] == {
        MSG_ID_HEADER: events[0].id,
        REQUEST_ID_HEADER: "req-1",
        TRACEPARENT_HEADER: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    assert fake.stored[1][2] == {MSG_ID_HEADER: events[1].id}
    assert metrics.value("eventhandler_events_published_total", type="incident.created") == 1


async def test_a_failure_stops_that_incident_only_and_never_reorders_it() -> None:
    a1, a2, a3 = make_event(1, 1), make_event(1, 2, EventType.UPDATED), make_event(1, 3, EventType.RESOLVED)
    b1, b2 = make_event(2, 1), make_event(2, 2, EventType.COMMENTED)
    fake = FakePublisher(fail={a2.id})
    publisher, metrics = batch(fake)

    reply = await publisher.publish([raw(e) for e in (a1, b1, a2, b2, a3)])

    assert reply.stored == [a1.id, b1.id, b2.id]
    assert [f.id for f in reply.failed] == [a2.id, a3.id]
    assert "message size exceeds" in reply.failed[0].error
    assert reply.failed[1].error.startswith("not attempted")
    assert a3.id not in fake.attempted
    stored_ids = [s[2][MSG_ID_HEADER] for s in fake.stored]
    assert stored_ids.index(b1.id) < stored_ids.index(b2.id)
    assert metrics.value("eventhandler_publish_failures_total", type="incident.resolved") == 1


async def test_the_next_request_retries_the_failed_tail_in_order() -> None:
    a1, a2, a3 = make_event(1, 1), make_event(1, 2, EventType.UPDATED), make_event(1, 3, EventType.RESOLVED)
    fake = FakePublisher(fail={a2.id})
    publisher, _ = batch(fake)
    await publisher.publish([raw(e) for e in (a1, a2, a3)])
    fake.fail = set()

    reply = await publisher.publish([raw(e) for e in (a1, a2, a3)])

    assert reply.stored == [a1.id, a2.id, a3.id]
    assert [s[2][MSG_ID_HEADER] for s in fake.stored] == [a1.id, a2.id, a3.id]


async def test_incidents_are_published_concurrently() -> None:
    events = [make_event(i) for i in range(1, 6)]
    fake = FakePublisher(stall={events[0].id})
    publisher, _ = batch(fake, timeout=0.3)

    reply = await publisher.publish([raw(e) for e in events])

    # Incident 1 stalls until the deadline; the others are stored meanwhile, not after it.
    assert reply.stored == [e.id for e in events[1:]]
    assert [(f.id, f.error) for f in reply.failed] == [(events[0].id, "timed out waiting for JetStream")]


async def test_duplicates_count_as_stored() -> None:
    event = make_event(7)
    fake = FakePublisher()
    publisher, metrics = batch(fake)

    first = await publisher.publish([raw(event)])
    second = await publisher.publish([raw(event), raw(event)])

    assert first.stored == second.stored == [event.id]
    assert len(fake.stored) == 1
    assert metrics.value("eventhandler_events_duplicate_total", type="incident.created") == 2


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"id": "x1", "type": "incident.created"}', "missing required field"),
        (b"not json", "JSON"),
        (b'{"id": 5}', "Expected `str`"),
    ],
)
async def test_invalid_events_are_rejected_and_the_rest_stored(body: bytes, error: str) -> None:
    good = make_event(3)
    fake = FakePublisher()
    publisher, _ = batch(fake)

    reply = await publisher.publish([msgspec.Raw(body), raw(good)])

    assert reply.stored == [good.id]
    assert len(reply.rejected) == 1 and error in reply.rejected[0].error
    assert reply.rejected[0].error.startswith("event #0:")


async def test_unknown_type_and_mismatched_subject_are_rejected() -> None:
    unknown = msgspec.structs.replace(make_event(4), type="incident.exploded")
    mismatched = msgspec.structs.replace(make_event(5), subject="6")
    publisher, _ = batch(FakePublisher())

    reply = await publisher.publish([raw(unknown), raw(mismatched)])

    assert [r.id for r in reply.rejected] == [unknown.id, mismatched.id]
    assert "incident.exploded" in reply.rejected[0].error
    assert "subject does not match" in reply.rejected[1].error


async def test_a_rejected_event_holds_back_its_incidents_later_events_only() -> None:
    a1 = make_event(7, 1)
    a2 = msgspec.structs.replace(make_event(7, 2, EventType.COMMENTED), type="incident.escalated")  # a newer type
    a3 = make_event(7, 3, EventType.ACKNOWLEDGED)
    b1 = make_event(8, 1)
    fake = FakePublisher()
    publisher, _ = batch(fake)

    reply = await publisher.publish([raw(e) for e in (a1, a2, a3, b1)])

    assert reply.stored == [a1.id, b1.id]
    assert [r.id for r in reply.rejected] == [a2.id]
    assert [f.id for f in reply.failed] == [a3.id]
    assert reply.failed[0].error == f"not attempted: earlier event {a2.id} of incident 7 was rejected"
    assert a3.id not in fake.attempted
