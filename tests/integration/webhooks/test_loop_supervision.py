"""An endpoint's delivery loop never stops in silence: a 410 it could not act on, or any unexpected error,
is logged, counted and retried, and the endpoint keeps receiving without a restart of the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from nats.aio.client import Client

from services.eventhandler.consumers import ConsumerBroker
from services.eventhandler.streams import ensure_streams, ensure_webhook_objects
from services.workers.webhooks.delivery import Deliverer
from services.workers.webhooks.journal import Journal
from services.workers.webhooks.loop import EndpointLoop
from services.workers.webhooks.metrics import WebhookMetrics
from services.workers.webhooks.settings import WebhookSettings
from services.workers.webhooks.worker import http_client
from shared.consumers import WebhookConsumerRequest
from shared.events import EventType, encode_event
from shared.webhooks import Attempt, Endpoint, EndpointSecret, new_secret
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support.polling import eventually
from tests.unit.eventhandler.factory import make_event

SETTINGS = WebhookSettings(timeout=2.0, ack_wait=5.0, retry_base=0.2, retry_max=0.5, fetch_timeout=0.5)


class FailingOnce(Journal):
    """A delivery log whose first write fails in a way nobody planned for."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.failed = False

    async def record(self, attempt: Attempt) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("an error nobody planned for")
        await super().record(attempt)


@pytest.fixture
async def deliverer() -> AsyncIterator[Deliverer]:
    made = Deliverer(http_client(SETTINGS), timeout=SETTINGS.timeout, allow_private=True)
    yield made
    await made.aclose()


async def started_loop(
    nc: Client, receiver: WebhookReceiver, deliverer: Deliverer, journal: type[Journal], on_gone: object
) -> tuple[EndpointLoop, asyncio.Task[None], str]:
    js = nc.jetstream()
    await ensure_streams(js, 1)
    await ensure_webhook_objects(js, 1)
    secret = new_secret()
    receiver.trust(secret)
    now = datetime.now(UTC)
    endpoint = Endpoint(
        id="d" * 16,
        url=receiver.hook_url,
        events=["incident.created"],
        secrets=[EndpointSecret(value=secret, created_at=now)],
        created_at=now - timedelta(minutes=1),
        updated_at=now,
    )
    broker = ConsumerBroker(nc, js)  # the event handler's side, in process: this test is about the loop

    async def ensure(target: Endpoint) -> None:
        request = WebhookConsumerRequest(
            endpoint_id=target.id, events=list(target.events), created_at=target.created_at, ack_wait=SETTINGS.ack_wait
        )
        await broker.webhook_ensure(msgspec.json.encode(request))

    await ensure(endpoint)
    event = make_event(7)
    await js.publish(EventType.CREATED.subject, encode_event(event), headers={"Nats-Msg-Id": event.id})

    loop = EndpointLoop(endpoint, js, deliverer, journal(js), SETTINGS, WebhookMetrics(), on_gone, ensure)  # type: ignore[arg-type]
    return loop, asyncio.create_task(loop.run()), event.id


async def test_a_410_whose_disable_failed_keeps_the_endpoint_delivering(
    nc: Client, receiver: WebhookReceiver, deliverer: Deliverer
) -> None:
    receiver.answer(410)
    gone: list[str] = []

    async def disable_fails(endpoint: Endpoint, reason: str) -> bool:
        gone.append(reason)
        receiver.answer(200)  # the receiver changes its mind before the next attempt
        return False

    loop, task, event_id = await started_loop(nc, receiver, deliverer, Journal, disable_fails)
    try:
        await eventually(
            lambda: _true(event_id in receiver.accepted_ids()), timeout=20, what="the event delivered after the 410"
        )
        assert len(gone) == 1
        assert not task.done()
    finally:
        loop.stop.set()
        await asyncio.wait_for(task, 10)


async def test_an_unexpected_error_is_counted_and_the_loop_goes_on(
    nc: Client, receiver: WebhookReceiver, deliverer: Deliverer
) -> None:
    async def never_gone(endpoint: Endpoint, reason: str) -> bool:
        return True

    loop, task, event_id = await started_loop(nc, receiver, deliverer, FailingOnce, never_gone)
    try:
        # The first attempt reached the receiver but its record failed: the event is offered again.
        await eventually(
            lambda: _true(receiver.accepted_ids().count(event_id) >= 2), timeout=20, what="the event offered again"
        )
        assert not task.done(), task
        assert loop.metrics.loop_errors.value(endpoint=loop.endpoint.id) == 1
    finally:
        loop.stop.set()
        await asyncio.wait_for(task, 10)


async def _true(value: bool) -> bool:
    return value
