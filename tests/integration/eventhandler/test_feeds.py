"""Feeds the event handler makes on request: read in order, removed when closed, and a lost one is noticed."""

from __future__ import annotations

import asyncio

import nats
import pytest

from shared.events import STREAM
from shared.feed import SILENT_AFTER_SECONDS, Feed, FeedGap
from shared.natsconn import inbox_prefix
from tests.integration.eventhandler.support import InProcessEventHandler, settings_for
from tests.support.processes import NatsServer


async def feeds(js: nats.js.JetStreamContext) -> list[str]:
    return [c.name for c in await js.consumers_info(STREAM) if c.name.startswith("feed-")]


async def test_a_feed_reads_incidents_in_order_and_closing_it_deletes_its_consumer(nats_server: NatsServer) -> None:
    api = await nats.connect(nats_server.url, inbox_prefix=inbox_prefix("api"))
    js = api.jetstream()
    async with InProcessEventHandler(settings_for(nats_server.url)):
        for i in range(3):
            await js.publish("incident.created", f'{{"n": {i}}}'.encode())
        feed = await Feed.open(api, "api", start_seq=2)
        assert len(await feeds(js)) == 1
        received = [await feed.next(timeout=5) for _ in range(2)]
        assert [m.data for m in received if m is not None] == [b'{"n": 1}', b'{"n": 2}']
        await feed.close()
        assert await feeds(js) == []
    await api.close()


async def test_a_feed_whose_consumer_is_gone_raises_a_gap_instead_of_waiting_forever(nats_server: NatsServer) -> None:
    """An in-memory consumer does not outlive its server: the reader must notice and open a new feed."""
    api = await nats.connect(nats_server.url, inbox_prefix=inbox_prefix("api"))
    js = api.jetstream()
    async with InProcessEventHandler(settings_for(nats_server.url)):
        feed = await Feed.open(api, "api", start_seq=1)
        (name,) = await feeds(js)
        await js.delete_consumer(STREAM, name)
        with pytest.raises(FeedGap):
            async with asyncio.timeout(SILENT_AFTER_SECONDS + 10):
                while True:
                    assert await feed.next(timeout=1) is None
        await feed.close()
    await api.close()
