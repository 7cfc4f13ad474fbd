"""Dead letters: advisories for max deliveries and terminated messages, listing and redrive."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig

from services.eventhandler.deadletters import DeadLetters
from services.eventhandler.metrics import Metrics
from shared.events import MSG_ID_HEADER, REDRIVE_HEADER, REQUEST_ID_HEADER, STREAM, EventType, encode_event
from shared.jetstream import (
    DEADLETTER_STREAM,
    DEADLETTERS_LIST_SUBJECT,
    DEADLETTERS_REDRIVE_SUBJECT,
    PUBLISH_SUBJECT,
    error_key,
    refs_bucket,
)
from tests.integration.eventhandler.support import (
    InProcessEventHandler,
    ServiceErrorReply,
    call,
    publish_body,
    settings_for,
)
from tests.support.polling import eventually
from tests.support.processes import NatsServer
from tests.unit.eventhandler.factory import make_event


async def add_worker(nc: Client, worker: str, max_deliver: int) -> None:
    await nc.jetstream().add_consumer(
        STREAM,
        ConsumerConfig(durable_name=worker, filter_subjects=["incident.created"], max_deliver=max_deliver, ack_wait=30),
    )


async def publish_one(nc: Client, incident_id: int) -> tuple[bytes, int]:
    event = make_event(incident_id, requestid=f"req-{incident_id}")
    reply = await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(event)]))
    assert reply["stored"] == [event.id]
    return encode_event(event), (await nc.jetstream().stream_info(STREAM)).state.last_seq


async def deliver(nc: Client, worker: str, action: str, times: int) -> None:
    """Fetch the worker's message `times` times, answering each delivery with nak or term."""
    sub = await nc.jetstream().pull_subscribe_bind(worker, STREAM)
    done = 0

    async def probe() -> bool:
        nonlocal done
        try:
            for msg in await sub.fetch(1, timeout=0.2):
                await (msg.nak() if action == "nak" else msg.term())
                done += 1
        except TimeoutError:
            pass
        return done >= times

    await eventually(probe, timeout=10, what=f"{times} deliveries to {worker}")
    if action == "nak":
        # The server gives up on a message (and advises so) when it would next deliver it.
        with pytest.raises(TimeoutError):
            await sub.fetch(1, timeout=0.2)
    await sub.unsubscribe()


async def dead_letters(nc: Client, expected: int, **request: object) -> list[dict[str, object]]:
    async def probe() -> list[dict[str, object]]:
        items: list[dict[str, object]] = (await call(nc, DEADLETTERS_LIST_SUBJECT, request))["items"]
        assert len(items) == expected, items
        return items or [{}]

    items = await eventually(probe, timeout=10, what=f"{expected} dead letters")
    return [i for i in items if i]


async def test_max_deliveries_and_terminated_messages_are_dead_lettered(
    nc: Client, eventhandler: InProcessEventHandler
) -> None:
    js = nc.jetstream()
    await add_worker(nc, "flaky", max_deliver=2)
    await add_worker(nc, "strict", max_deliver=5)
    body, seq = await publish_one(nc, 1)
    kv = await js.create_key_value(bucket=refs_bucket("flaky"))
    record = {"error": "Jira answered 502", "worker": "flaky", "deliveries": 2, "time": "2026-11-25T09:00:00Z"}
    await kv.put(error_key(seq), json.dumps(record).encode())

    await deliver(nc, "flaky", "nak", 2)
    await deliver(nc, "strict", "term", 1)

    items = await dead_letters(nc, 2)
    by_worker = {item["worker"]: item for item in items}
    flaky, strict = by_worker["flaky"], by_worker["strict"]
    assert (flaky["stream_seq"], flaky["deliveries"], flaky["reason"]) == (seq, 2, "max_deliveries")
    assert flaky["error"] == "Jira answered 502"
    assert (strict["stream_seq"], strict["deliveries"], strict["reason"]) == (seq, 1, "terminated")
    assert strict["error"] == "unknown"
    assert flaky["event"] == strict["event"] == json.loads(body)
    assert await dead_letters(nc, 1, worker="strict") == [strict]
    assert await dead_letters(nc, 1, limit=1) == [items[0]]
    assert await dead_letters(nc, 1, after=items[0]["seq"]) == [items[1]]
    stored = await js.get_msg(DEADLETTER_STREAM, seq=int(str(flaky["seq"])))
    assert stored.subject == "deadletter.flaky"
    assert stored.headers is not None and stored.headers[REQUEST_ID_HEADER] == "req-1"
    assert stored.headers[MSG_ID_HEADER] == f"dlq:flaky:{seq}"


async def test_a_repeated_advisory_is_stored_once(nc: Client, eventhandler: InProcessEventHandler) -> None:
    js = nc.jetstream()
    await add_worker(nc, "strict", max_deliver=5)
    _, seq = await publish_one(nc, 2)
    await deliver(nc, "strict", "term", 1)
    await dead_letters(nc, 1)

    # What a second replica hearing the same advisory does: its copy is dropped as a duplicate.
    await DeadLetters(js, Metrics()).dead_letter("strict", seq, 1, "terminated")

    assert (await js.stream_info(DEADLETTER_STREAM)).state.messages == 1


async def test_redrive_puts_the_event_back_for_that_worker(nc: Client, eventhandler: InProcessEventHandler) -> None:
    js = nc.jetstream()
    await add_worker(nc, "strict", max_deliver=5)
    body, _ = await publish_one(nc, 3)
    await publish_one(nc, 4)
    await deliver(nc, "strict", "term", 2)
    first, second = await dead_letters(nc, 2, worker="strict")

    reply = await call(nc, DEADLETTERS_REDRIVE_SUBJECT, {"seq": first["seq"]})

    assert reply == {"redriven": 1}
    back = await js.get_msg(STREAM, seq=(await js.stream_info(STREAM)).state.last_seq)
    assert back.subject == "incident.created" and back.data == body
    assert back.headers is not None and back.headers[REDRIVE_HEADER] == "strict"
    assert back.headers[MSG_ID_HEADER] == f"{json.loads(body)['id']}:redrive:{first['seq']}"
    assert back.headers[REQUEST_ID_HEADER] == "req-3"
    assert await dead_letters(nc, 1) == [second]
    with pytest.raises(ServiceErrorReply) as gone:
        await call(nc, DEADLETTERS_REDRIVE_SUBJECT, {"seq": first["seq"]})
    assert gone.value.code == "404"

    assert await call(nc, DEADLETTERS_REDRIVE_SUBJECT, {"worker": "strict"}) == {"redriven": 1}
    assert await dead_letters(nc, 0) == []
    assert (await js.stream_info(STREAM)).state.messages == 4
    assert (await js.consumer_info(STREAM, "strict")).num_pending == 2  # both redriven events wait for it


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        (DEADLETTERS_REDRIVE_SUBJECT, {}),
        (DEADLETTERS_REDRIVE_SUBJECT, {"seq": 1, "worker": "jira"}),
        (DEADLETTERS_REDRIVE_SUBJECT, {"worker": "Not A Worker"}),
        (DEADLETTERS_LIST_SUBJECT, {"limit": 0}),
        (DEADLETTERS_LIST_SUBJECT, {"limit": "ten"}),
        (DEADLETTERS_LIST_SUBJECT, {"worker": "x.y"}),
    ],
)
async def test_bad_dead_letter_requests_are_400(
    nc: Client, eventhandler: InProcessEventHandler, subject: str, body: dict[str, object]
) -> None:
    with pytest.raises(ServiceErrorReply) as bad:
        await call(nc, subject, body)
    assert bad.value.code == "400"


async def test_other_event_types_flow_through_untouched(nc: Client, eventhandler: InProcessEventHandler) -> None:
    event = make_event(5, 1, EventType.DELETED)
    await call(nc, PUBLISH_SUBJECT, publish_body([encode_event(event)]))
    assert await call(nc, DEADLETTERS_LIST_SUBJECT, {}) == {"items": []}


async def test_a_dead_letter_consumer_that_dies_is_restarted_and_still_dead_letters(
    nc: Client, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    consume = DeadLetters.consume
    deaths: list[str] = []

    async def dies_once(self: DeadLetters, stop: asyncio.Event) -> None:
        if not deaths:
            deaths.append("died")
            raise RuntimeError("an error nobody planned for")
        await consume(self, stop)

    monkeypatch.setattr(DeadLetters, "consume", dies_once)
    async with InProcessEventHandler(settings_for(nats_server.url)):
        await add_worker(nc, "strict", max_deliver=5)
        await publish_one(nc, 1)
        await deliver(nc, "strict", "term", 1)
        [item] = await dead_letters(nc, 1)
        assert (item["worker"], item["reason"]) == ("strict", "terminated")
    assert deaths == ["died"]
