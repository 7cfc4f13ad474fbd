"""A vendor down far longer than ten backoffs: nothing is dead-lettered, everything lands once it is back."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from nats.js import JetStreamContext

from services.workers.metrics import Outcome
from services.workers.zendesk.worker import ZendeskWorker
from shared.events import STREAM
from tests.chaos.gate import Gate
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.helpers import FAST, StartWorker, settled
from tests.integration.workers.vendors import zendesk_env
from tests.support.polling import eventually

OUTAGE_SECONDS = 45.0
INCIDENTS = 3


@pytest.mark.timeout(180)
async def test_a_45_second_outage_dead_letters_nothing_and_delivers_everything_afterwards(
    js: JetStreamContext, fake_zendesk: FakeZendesk, start_worker: StartWorker
) -> None:
    gate = Gate(fake_zendesk.port)  # closed: connections to the vendor are refused
    settings = msgspec.structs.replace(FAST, retry_base=0.5, retry_max=2.0)
    running = await start_worker(ZendeskWorker, zendesk_env(fake_zendesk) | {"ZENDESK_BASE_URL": gate.url}, settings)
    feed = IncidentFeed()
    for _ in range(INCIDENTS):
        await publish(js, feed.create("storage array degraded"))
    for incident_id in range(1, INCIDENTS + 1):
        await publish(js, feed.comment(incident_id, "failing over"))
    metrics = running.runner.metrics

    async def retrying() -> bool:
        return metrics.events[Outcome.RETRIED] >= INCIDENTS

    await eventually(retrying, timeout=20, what="retries while the vendor is down")
    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself: the vendor stays down this long
    assert metrics.events[Outcome.RETRIED] > 10, "retries went on past the old cap of ten deliveries"
    assert fake_zendesk.requests == []
    await gate.open()
    try:
        await settled(js, "zendesk", timeout=60)
    finally:
        await gate.close()

    assert metrics.events[Outcome.DEAD_LETTERED] == 0 and metrics.events[Outcome.FAILED] == 0
    # An older event redelivered after a newer one of its incident is skipped as stale.
    assert metrics.events[Outcome.PROCESSED] + metrics.events[Outcome.SKIPPED] == 2 * INCIDENTS
    for incident_id in range(1, INCIDENTS + 1):
        assert len(fake_zendesk.for_incident(incident_id)) == 1
        bodies = fake_zendesk.only(incident_id).comment_bodies()
        assert sum(f"[incident-{incident_id} #1]" in b for b in bodies) == 1
    info = await js.consumer_info(STREAM, "zendesk")
    assert info.num_redelivered == 0 and info.num_ack_pending == 0
