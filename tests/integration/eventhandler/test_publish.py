"""The publish endpoint against a real JetStream: order, subjects, headers, bodies, duplicates, failures."""

from __future__ import annotations

import time

import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from services.eventhandler.publishing import event_headers
from shared.events import (
    MSG_ID_HEADER,
    REQUEST_ID_HEADER,
    STREAM,
    TRACEPARENT_HEADER,
    EventType,
    decode_event,
    encode_event,
)
from shared.jetstream import PUBLISH_SUBJECT
from tests.integration.eventhandler.support import InProcessEventHandler, ServiceErrorReply, call, publish_body
from tests.unit.eventhandler.factory import make_event

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def stream_messages(nc: Client) -> list[tuple[str, bytes, dict[str, str]]]:
    js = nc.jetstream()
    info = await js.stream_info(STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(STREAM, seq=seq)
        out.append((msg.subject or "", msg.data or b"", dict(msg.headers or {})))
    return out


async def test_events_are_stored_in_order_with_subjects_headers_and_bodies(
    nc: Client, eventhandler: InProcessEventHandler
) -> None:
    events = [
        make_event(1, 1, requestid="req-7", traceparent=TRACEPARENT),
        make_event(1, 2, EventType.UPDATED, message="disk very full"),
        make_event(2, 1),
        make_event(1, 3, EventType.COMMENTED),
        make_event(1, 4, EventType.RESOLVED),
    ]

    reply = await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(e) for e in events]))

    assert reply == {"stored": [e.id for e in events], "failed": [], "rejected": []}
    stored = await stream_messages(nc)
    assert len(stored) == len(events)
    by_id = {decode_event(body).id: (subject, body, headers) for subject, body, headers in stored}
    for event in events:
        subject, body, headers = by_id[event.id]
        assert subject == event.type
        assert body == encode_event(event) and decode_event(body) == event
        assert {k: v for k, v in headers.items() if k != "Nats-Expected-Stream"} == event_headers(event)
    assert by_id[events[0].id][2][REQUEST_ID_HEADER] == "req-7"
    assert by_id[events[0].id][2][TRACEPARENT_HEADER] == TRACEPARENT
    incident_1 = [decode_event(body).incidentversion for _, body, _ in stored if decode_event(body).subject == "1"]
    assert incident_1 == [1, 2, 3, 4]


async def test_a_repeated_request_stores_nothing_twice(nc: Client, eventhandler: InProcessEventHandler) -> None:
    events = [make_event(i, 1) for i in range(1, 4)]
    body = publish_body([encode_event(e) for e in events])

    first = await call(nc, PUBLISH_SUBJECT, body)
    second = await call(nc, PUBLISH_SUBJECT, body)

    assert first["stored"] == second["stored"] == [e.id for e in events]
    stored = await stream_messages(nc)
    assert sorted(h[MSG_ID_HEADER] for _, _, h in stored) == sorted(e.id for e in events)


async def test_a_rejected_store_stops_only_that_incident(nc: Client, eventhandler: InProcessEventHandler) -> None:
    # An operator's stream limit makes JetStream itself refuse one event in the middle of incident 1.
    js = nc.jetstream()
    config: StreamConfig = (await js.stream_info(STREAM)).config
    await js.update_stream(config.evolve(max_msg_size=4096))
    a1, a2, a3 = make_event(1, 1), make_event(1, 2, EventType.UPDATED, message="x" * 5000), make_event(1, 3)
    b1, b2 = make_event(2, 1), make_event(2, 2, EventType.ACKNOWLEDGED)

    reply = await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(e) for e in (a1, a2, b1, a3, b2)]))

    assert reply["stored"] == [a1.id, b1.id, b2.id]
    assert [f["id"] for f in reply["failed"]] == [a2.id, a3.id]
    assert "maximum" in reply["failed"][0]["error"]
    assert reply["failed"][1]["error"].startswith("not attempted")
    ids = [h[MSG_ID_HEADER] for _, _, h in await stream_messages(nc)]
    assert a3.id not in ids and ids.index(b1.id) < ids.index(b2.id)


async def test_invalid_events_are_rejected(nc: Client, eventhandler: InProcessEventHandler) -> None:
    good = make_event(5)
    reply = await call(nc, PUBLISH_SUBJECT, publish_body([b'{"id":"bad-1","type":"incident.foo"}', encode_event(good)]))
    assert reply["stored"] == [good.id]
    assert reply["rejected"][0]["id"] == "bad-1"
    with pytest.raises(ServiceErrorReply) as bad:
        await call(nc, PUBLISH_SUBJECT, {"events": 3})
    assert bad.value.code == "400"
    with pytest.raises(ServiceErrorReply) as too_many:
        await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(good)] * 1001))
    assert too_many.value.code == "400" and "too many events" in too_many.value.description


async def test_500_events_are_stored_quickly(nc: Client, eventhandler: InProcessEventHandler) -> None:
    events = [make_event(incident, version) for incident in range(1, 101) for version in range(1, 6)]
    body = publish_body([encode_event(e) for e in events])
    await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(make_event(999))]))  # warm up

    started = time.perf_counter()
    reply = await call(nc, PUBLISH_SUBJECT, body)
    elapsed = time.perf_counter() - started

    assert len(reply["stored"]) == 500
    print(f"500 events (100 incidents x 5) stored in {elapsed * 1000:.1f} ms")
    # Well under 100 ms on an idle loopback; the margin absorbs a busy CI machine.
    assert elapsed < 0.5
