"""Subscriptions through the API against a real event handler: only known workers can be set."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from services.api.app import create_app
from shared.events import STREAM
from tests.integration.api.conftest import api_settings
from tests.support.processes import NatsServer
from tests.support.services import module_process, service_env
from tests.support.stack import wait_for_eventhandler


async def test_an_unknown_worker_is_404_listing_the_known_workers(
    sqlite_database_url: str, nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    # A process: the API's test client blocks this event loop while it waits for the answer.
    env = service_env(NATS_URL=nats_server.url)
    handler = module_process("eventhandler", ["services.eventhandler"], tmp_path, env).start()
    try:
        async with AsyncTestClient(create_app(api_settings(sqlite_database_url, nats_server.url))) as client:
            await wait_for_eventhandler(client)
            await nc.jetstream().delete_consumer(STREAM, "zendesk")  # known from the file, no consumer right now

            response = await client.put("/subscriptions/jirra", json={"events": ["incident.created"]})

            assert response.status_code == 404
            assert response.json() == {
                "status": "Not Found",
                "error": "unknown worker: 'jirra' (known workers: jira, slack, zendesk)",
            }
            listed = (await client.get("/subscriptions")).json()
            assert sorted(listed) == ["jira", "slack", "zendesk"] and listed["zendesk"] == []
            known = await client.put("/subscriptions/zendesk", json={"events": ["incident.created"]})
            assert (known.status_code, known.json()["events"]) == (200, ["incident.created"])
        try:
            await nc.jetstream().consumer_info(STREAM, "jirra")
            raise AssertionError("a consumer nobody reads was created")
        except NotFoundError:
            pass
    finally:
        handler.stop()
