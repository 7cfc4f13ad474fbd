"""Subscriptions through the API: they are the consumers' filter subjects and decide what a worker gets."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError

from shared.events import STREAM, decode_event
from tests.support.processes import ROOT
from tests.support.stack import Stack, wait_for_empty_outbox


async def fetch_types(nc: Client, worker: str, expected: int) -> list[str]:
    sub = await nc.jetstream().pull_subscribe_bind(worker, stream=STREAM)
    types: list[str] = []
    try:
        while len(types) < expected:
            for msg in await sub.fetch(expected - len(types), timeout=5):
                types.append(decode_event(msg.data).type)
                await msg.ack()
        with pytest.raises(NatsTimeoutError):
            await sub.fetch(1, timeout=0.5)  # and nothing more
    finally:
        await sub.unsubscribe()
    return types


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_changing_a_subscription_changes_what_the_worker_receives(stack: Stack, js_client: Client) -> None:
    async with stack.client() as http:
        initial = (await http.get("/subscriptions")).json()
        assert set(initial) >= {"jira", "slack", "zendesk"}
        assert "incident.created" in initial["jira"]

        response = await http.put("/subscriptions/jira", json={"events": ["incident.resolved", "incident.created"]})
        assert response.status_code == 200, response.text
        assert (await http.get("/subscriptions")).json()["jira"] == ["incident.created", "incident.resolved"]
        info = await js_client.jetstream().consumer_info(STREAM, "jira")
        assert sorted(info.config.filter_subjects or []) == ["incident.created", "incident.resolved"]

        bad = await http.put("/subscriptions/jira", json={"events": ["incident.exploded"]})
        assert bad.status_code == 400
        assert bad.json()["status"] == "Bad Request"
        assert "incident.exploded" in bad.json()["error"]
        assert (await http.put("/subscriptions/Bad Name!", json={"events": []})).status_code == 400

        incident_id = (await http.post("/incident/", json={"message": "m"})).json()["ID"]
        await http.post(f"/incident/{incident_id}/acknowledge")
        await http.post(f"/incident/{incident_id}/comments", json={"comment": "c"})
        await http.post(f"/incident/{incident_id}/resolve")
    await wait_for_empty_outbox(stack.database_url)
    assert await fetch_types(js_client, "jira", 2) == ["incident.created", "incident.resolved"]
    assert await fetch_types(js_client, "slack", 4) == [
        "incident.created",
        "incident.acknowledged",
        "incident.commented",
        "incident.resolved",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_new_subscriber_starts_now_or_replays_history(stack: Stack, js_client: Client) -> None:
    # New workers are made known by the subscriptions file; their consumers then start where PUT says.
    extra = "[workers.audit-now]\nevents = []\n[workers.audit-all]\nevents = []\n"
    file = stack.workdir / "subscriptions.toml"
    file.write_text((ROOT / "config/subscriptions.toml").read_text() + extra)
    stack.extra_env["SUBSCRIPTIONS_FILE"] = str(file)
    async with stack.client() as http:
        for n in range(3):
            await http.post("/incident/", json={"message": f"before {n}"})
        await wait_for_empty_outbox(stack.database_url)
        fresh = await http.put("/subscriptions/audit-now", json={"events": ["incident.created"], "start": "now"})
        replay = await http.put("/subscriptions/audit-all", json={"events": ["incident.created"], "start": "all"})
        assert fresh.status_code == replay.status_code == 200
        await http.post("/incident/", json={"message": "after"})
    await wait_for_empty_outbox(stack.database_url)
    assert await fetch_types(js_client, "audit-now", 1) == ["incident.created"]
    assert await fetch_types(js_client, "audit-all", 4) == ["incident.created"] * 4
