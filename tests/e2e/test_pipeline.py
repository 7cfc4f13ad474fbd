"""API → outbox → event handler → JetStream, with crashes: nothing lost, nothing twice, order kept."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from nats.aio.client import Client

from shared.events import STREAM
from tests.support.polling import eventually
from tests.support.processes import free_port
from tests.support.stack import (
    Stack,
    assert_stream_matches_event_log,
    envelope,
    stream_events,
    wait_for_empty_outbox,
)


async def create_many(http: httpx.AsyncClient, count: int, concurrency: int = 16) -> list[int]:
    sem = asyncio.Semaphore(concurrency)
    ids: list[int] = []

    async def one(n: int) -> None:
        async with sem:
            response = await http.post("/incident/", json={"message": f"burst {n}"})
            assert response.status_code == 200, response.text
            ids.append(int(response.json()["ID"]))

    await asyncio.gather(*(one(n) for n in range(count)))
    return ids


async def churn(http: httpx.AsyncClient, ids: list[int], rounds: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for _ in range(rounds):
        incident = rng.choice(ids)
        action = rng.choice(["acknowledge", "resolve", "reopen", "unacknowledge", "comments"])
        body = {"comment": f"note {rng.random()}"} if action == "comments" else None
        response = await http.post(f"/incident/{incident}/{action}", json=body)
        assert response.status_code == 200, response.text


async def test_each_action_emits_contract_events_in_order(stack: Stack, js_client: Client) -> None:
    stack.start_eventhandler()
    api = stack.start_api()
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        incident_id = (await http.post("/incident/", json={"message": "db down"})).json()["ID"]
        await http.put(f"/incident/{incident_id}", json={"message": "db really down", "acknowledged": "yes"})
        await http.post(f"/incident/{incident_id}/comments", json={"comment": "failing over"})
        await http.post(f"/incident/{incident_id}/resolve")
        await http.post(f"/incident/{incident_id}/reopen")
        await http.post(f"/incident/{incident_id}/unacknowledge")
        await http.delete(f"/incident/{incident_id}")
    await wait_for_empty_outbox(stack.database_url)
    js = js_client.jetstream()
    stored = await stream_events(js)
    assert [s.subject for s in stored] == [
        "incident.created",
        "incident.updated",
        "incident.acknowledged",
        "incident.commented",
        "incident.resolved",
        "incident.reopened",
        "incident.unacknowledged",
        "incident.deleted",
    ]
    assert [s.event.incidentversion for s in stored] == list(range(1, 9))
    first = envelope((await js.get_msg(STREAM, stored[0].seq)).data or b"")
    assert first["specversion"] == "1.0"
    assert first["type"] == "incident.created"
    assert first["subject"] == str(incident_id)
    assert first["datacontenttype"] == "application/json"
    assert first["source"]
    assert first["time"].endswith("Z") or "+00:00" in first["time"]
    assert first["data"]["incident"]["message"] == "db down"
    assert first["data"]["incident"]["id"] == int(incident_id)
    commented = envelope((await js.get_msg(STREAM, stored[3].seq)).data or b"")
    assert commented["data"]["comment"] == "failing over"
    assert commented["data"]["incident"]["comments"] == ["failing over"]
    deleted = stored[-1].event
    assert deleted.data.incident.id == int(incident_id)  # the seed sent id 0 on delete
    assert all(s.msg_id == s.event.id for s in stored)
    await assert_stream_matches_event_log(js, stack.database_url)


async def test_writes_succeed_while_eventhandler_is_killed_during_a_burst(stack: Stack, js_client: Client) -> None:
    eventhandler = stack.start_eventhandler()
    api = stack.start_api()
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        burst = asyncio.create_task(create_many(http, 300))
        await eventually(lambda: _stream_has(js_client, 20), timeout=20, what="events flowing")
        eventhandler.kill()
        ids = await burst
        await churn(http, ids, 100)
        stack.start_eventhandler()
    await wait_for_empty_outbox(stack.database_url)
    counts = await assert_stream_matches_event_log(js_client.jetstream(), stack.database_url)
    assert counts["incidents"] == 300
    assert counts["events"] > 300  # no-op actions (resolving a resolved incident) emit nothing


async def test_nats_stopped_and_restarted_during_a_burst(stack: Stack, js_client: Client) -> None:
    stack.start_eventhandler()
    api = stack.start_api()
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        first = await create_many(http, 100)
        await wait_for_empty_outbox(stack.database_url)
        stack.nats.kill()
        # The API keeps accepting writes while NATS is down; the outbox holds them.
        second = await create_many(http, 150)
        ready = (await http.get("/health/ready")).json()
        assert ready["checks"]["nats"] != "ok"
        assert ready["checks"]["outbox_backlog"] > 0
        stack.nats.start()
        await churn(http, first + second, 50)
    await wait_for_empty_outbox(stack.database_url, timeout=90)
    counts = await assert_stream_matches_event_log(js_client.jetstream(), stack.database_url)
    assert counts["incidents"] == 250


async def test_api_killed_between_commit_and_relay_loses_nothing(stack: Stack, js_client: Client) -> None:
    stack.start_eventhandler()
    # This API cannot reach NATS: every change commits but stays in the outbox.
    stranded = stack.start_api(nats_url=f"nats://127.0.0.1:{free_port()}")
    async with httpx.AsyncClient(base_url=stranded.url, timeout=30) as http:
        ids = await create_many(http, 120)
        await churn(http, ids, 40)
    stranded.kill()
    assert len(await stream_events(js_client.jetstream())) == 0
    stack.start_api()
    await wait_for_empty_outbox(stack.database_url)
    counts = await assert_stream_matches_event_log(js_client.jetstream(), stack.database_url)
    assert counts["incidents"] == 120
    assert counts["events"] > 120


async def test_api_killed_mid_burst_publishes_every_committed_event_once(stack: Stack, js_client: Client) -> None:
    stack.start_eventhandler()
    api = stack.start_api()
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:

        async def fire() -> None:
            for n in range(400):
                try:
                    await http.post("/incident/", json={"message": f"n{n}"})
                except httpx.HTTPError:
                    return

        burst = asyncio.gather(*(fire() for _ in range(8)))
        await eventually(lambda: _stream_has(js_client, 50), timeout=20, what="events flowing")
        api.kill()
        await burst
    stack.start_api()
    await wait_for_empty_outbox(stack.database_url)
    counts = await assert_stream_matches_event_log(js_client.jetstream(), stack.database_url)
    assert counts["events"] >= 50


async def _stream_has(nc: Client, count: int) -> bool:
    try:
        info: Any = await nc.jetstream().stream_info(STREAM)
    except Exception:
        return False
    return int(info.state.messages) >= count
