"""The relay sends committed creates handed over in memory, without reading the outbox table back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection

from litestar.testing import AsyncTestClient
from nats.aio.client import Client

from services.api.app import build_components, create_app
from services.api.storage.outbox import Claim, OutboxStore
from tests.integration.api.test_relay import create, eventhandler, relay_settings, stored_by_incident
from tests.support.polling import eventually
from tests.support.processes import NatsServer
from tests.support.stack import assert_stream_matches_event_log, outbox_size


class CountingOutbox(OutboxStore):
    """Counts table rounds (claims) of the relay."""

    claims = 0

    @contextlib.asynccontextmanager
    async def claim(self, limit: int, exclude: Collection[int] = ()) -> AsyncIterator[Claim]:
        self.claims += 1
        async with super().claim(limit, exclude) as claim:
            yield claim


async def test_creates_go_out_from_memory_and_changes_from_the_table(
    database_url: str, nats_server: NatsServer, nc: Client
) -> None:
    settings = relay_settings(database_url, nats_server.url)
    parts = build_components(settings)
    counting = CountingOutbox(parts.db)
    parts.relay.store = counting
    parts.relay.idle_poll = 3600.0  # no timed table round during the test
    async with eventhandler(nats_server), AsyncTestClient(create_app(settings, parts)) as client:

        async def started() -> bool:
            return counting.claims >= 1 and parts.relay.running

        await eventually(started, timeout=30, what="the relay's first table round at start")
        before = counting.claims

        ids = await asyncio.gather(*[create(client, f"m{i}") for i in range(40)])

        async def drained() -> bool:
            return await outbox_size(database_url) == 0

        await eventually(drained, timeout=60, what="the handed-over rows to be delivered and deleted")
        assert counting.claims == before, "creates should not need a table round"
        assert set((await stored_by_incident(nc)).keys()) == set(ids)

        assert (await client.post(f"/incident/{ids[0]}/acknowledge")).status_code == 200
        await eventually(drained, timeout=60, what="the change to be delivered")
        assert counting.claims > before
        assert (await stored_by_incident(nc))[ids[0]] == ["incident.created", "incident.acknowledged"]
        counts = await assert_stream_matches_event_log(nc.jetstream(), database_url)
        assert counts["events"] == 41
