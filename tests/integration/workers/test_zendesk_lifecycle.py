"""A Zendesk ticket follows an incident through its whole life."""

from __future__ import annotations

from nats.js import JetStreamContext

from services.workers.metrics import Outcome
from services.workers.zendesk.worker import ZendeskWorker
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.helpers import StartWorker, load_record, settled
from tests.integration.workers.vendors import zendesk_env
from tests.support.polling import eventually


async def test_ticket_follows_the_incident(
    js: JetStreamContext, fake_zendesk: FakeZendesk, start_worker: StartWorker
) -> None:
    await start_worker(ZendeskWorker, zendesk_env(fake_zendesk))
    feed = IncidentFeed()

    await publish(js, feed.create("Checkout fails for EU cards"))

    async def created() -> bool:
        return len(fake_zendesk.for_incident(1)) == 1

    await eventually(created, what="ticket created")
    ticket = fake_zendesk.only(1)
    assert ticket.subject == "Incident 1: Checkout fails for EU cards"
    assert ticket.tags == ["incident-1"]

    await publish(js, feed.acknowledge(1))
    await publish(js, feed.comment(1, "PSP confirms outage"))
    await publish(js, feed.resolve(1))
    await settled(js, "zendesk")
    ticket = fake_zendesk.only(1)
    assert ticket.status == "solved"
    assert all(c["public"] is False for c in ticket.comments)

    await publish(js, feed.reopen(1))
    await settled(js, "zendesk")
    assert fake_zendesk.only(1).status == "open"

    await publish(js, feed.edit(1, "Checkout fails for all cards"))
    await publish(js, feed.delete(1))
    await settled(js, "zendesk")
    ticket = fake_zendesk.only(1)
    assert ticket.subject == "Incident 1: Checkout fails for all cards"
    assert ticket.status == "closed"
    assert [b.splitlines()[0] for b in ticket.comment_bodies()] == [
        "Checkout fails for EU cards",
        "Incident acknowledged.",
        "PSP confirms outage",
        "Incident message changed: Checkout fails for all cards",
        "Incident deleted.",
    ]
    record = await load_record(js, "zendesk", 1)
    assert record is not None and record.ref is not None and record.ref.id == str(ticket.id)
    assert record.deleted


async def test_a_ticket_closed_by_zendesk_is_left_alone(
    js: JetStreamContext, fake_zendesk: FakeZendesk, start_worker: StartWorker
) -> None:
    """Zendesk closes solved tickets on its own; later changes can't be written there (422), nor retried."""
    running = await start_worker(ZendeskWorker, zendesk_env(fake_zendesk))
    feed = IncidentFeed()
    await publish(js, feed.create("Slow search"))
    await publish(js, feed.resolve(1))
    await settled(js, "zendesk")
    fake_zendesk.close_ticket(fake_zendesk.only(1).id)

    await publish(js, feed.comment(1, "root cause found"))
    await settled(js, "zendesk")
    ticket = fake_zendesk.only(1)
    assert ticket.status == "closed"
    assert "root cause found" not in "\n".join(ticket.comment_bodies())
    assert fake_zendesk.count("PUT", r"/api/v2/tickets/\d+\.json") == 2  # the solve, then the refused comment
    assert running.runner.metrics.events[Outcome.FAILED] == 0
