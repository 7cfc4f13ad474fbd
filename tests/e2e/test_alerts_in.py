"""Alerts in, end to end: a real Alertmanager and the `pagerduty` client against the API as a process, the event
handler, JetStream and workers on fake vendors; on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pagerduty
import pytest
from nats.aio.client import Client

from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.vendors import slack_env, zendesk_env
from tests.support.alertmanager import Alertmanager, firing, resolved
from tests.support.polling import eventually
from tests.support.processes import Process
from tests.support.services import ApiProcess, module_process, service_env
from tests.support.stack import Stack, stream_events, wait_for_empty_outbox, wait_for_eventhandler

TOKEN = "alertmanager-bearer-42"
ROUTING_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def start_system(stack: Stack, tmp_path: Path, worker: str, env: dict[str, str]) -> tuple[ApiProcess, Process]:
    stack.extra_env = {"API_TOKENS": f"alertmanager:{TOKEN}", "INTEGRATION_KEYS": f"monitoring:{ROUTING_KEY}"}
    stack.start_eventhandler()
    api = stack.start_api()
    process = module_process(
        f"worker-{worker}", ["services.workers", worker], tmp_path, service_env(NATS_URL=stack.nats.url, **env)
    ).start()
    return api, process


async def incidents(http: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    answer = await http.get("/incident/", params=query)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def test_alertmanager_groups_open_track_resolve_and_reopen_incidents(
    stack: Stack, tmp_path: Path, fake_slack: FakeSlack, js_client: Client
) -> None:
    api, worker = start_system(stack, tmp_path, "slack", slack_env(fake_slack))
    alertmanager = Alertmanager(tmp_path / "alertmanager", f"{api.url}/integrations/alertmanager", TOKEN).start()
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
            await wait_for_eventhandler(http)
            labels = {"alertname": "DiskFull", "severity": "critical", "service": "db"}
            first = firing({**labels, "instance": "db-1"}, {"summary": "Disk almost full"})
            second = firing({**labels, "instance": "db-2"}, {"summary": "Disk almost full"})
            await alertmanager.post_alerts(http, first)

            async def opened() -> dict[str, Any]:
                found = await incidents(http, source=alertmanager.url)
                assert len(found) == 1, found
                return found[0]

            incident = await eventually(opened, timeout=60, what="Alertmanager's notification to open an incident")
            assert incident["message"] == "Disk almost full"
            assert incident["severity"] == "critical"
            # The alert's generatorURL is kept as a link for responders.
            assert incident["labels"] == labels | {"instance": "db-1", "generator_url": "http://prometheus.test/graph"}
            assert incident["dedup_key"] == '{}:{alertname="DiskFull"}'
            assert incident["status"] == "unresolved"

            # Another alert joins the group: recorded on the same incident.
            await alertmanager.post_alerts(http, first, second)

            async def joined() -> bool:
                shown = (await http.get(f"/incident/{incident['id']}")).json()
                return any("instance=db-2" in c for c in shown["comments"])

            await eventually(joined, timeout=60, what="the joining alert to be recorded")
            # The whole group resolves: so does the incident, and no second one was opened meanwhile.
            await alertmanager.post_alerts(http, resolved(first), resolved(second))

            async def group_resolved() -> bool:
                return bool((await http.get(f"/incident/{incident['id']}")).json()["status"] == "resolved")

            await eventually(group_resolved, timeout=60, what="the group's resolved notification")
            assert [i["id"] for i in await incidents(http, source=alertmanager.url)] == [incident["id"]]

            # The group fires again later: a new incident.
            await alertmanager.post_alerts(http, firing({**labels, "instance": "db-1"}, {"summary": "Disk full"}))

            async def refired() -> dict[str, Any]:
                found = await incidents(http, source=alertmanager.url, status="unresolved")
                assert len(found) == 1 and found[0]["id"] != incident["id"], found
                return found[0]

            again = await eventually(refired, timeout=60, what="a new incident when the group fires again")
            assert again["dedup_key"] == incident["dedup_key"]
            assert len(await incidents(http, source=alertmanager.url)) == 2

            # The events reached the Slack worker: one root message per incident, showing the alert fields.
            await wait_for_empty_outbox(stack.database_url)

            async def in_slack() -> bool:
                return all(len(fake_slack.roots_for(i)) == 1 for i in (incident["id"], again["id"]))

            await eventually(in_slack, timeout=60, what="both incidents in Slack")
            root = fake_slack.only(incident["id"])
            assert "Severity: *critical*" in root.blocks[1]["elements"][0]["text"]

            async def slack_shows_resolved() -> bool:
                return "*resolved*" in fake_slack.only(incident["id"]).blocks[-1]["elements"][0]["text"]

            await eventually(slack_shows_resolved, timeout=60, what="Slack to show the resolved incident")
        stored = [s for s in await stream_events(js_client.jetstream()) if s.event.incident_id == incident["id"]]
        assert [s.subject for s in stored] == ["incident.created", "incident.commented", "incident.resolved"]
        assert all(s.event.data.incident.dedup_key == incident["dedup_key"] for s in stored)
    finally:
        alertmanager.stop()
        worker.stop()


def events_client(api: ApiProcess, routing_key: str = ROUTING_KEY) -> pagerduty.EventsApiV2Client:
    client = pagerduty.EventsApiV2Client(routing_key)
    client._url = api.url  # the client insists on https for its base URL; ours is plain loopback HTTP
    client.retry[503] = 20
    return client


async def test_events_v2_with_the_pagerduty_client(
    stack: Stack, tmp_path: Path, fake_zendesk: FakeZendesk, js_client: Client
) -> None:
    api, worker = start_system(stack, tmp_path, "zendesk", zendesk_env(fake_zendesk))
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
            await wait_for_eventhandler(http)

            # 40 triggers with one dedup key at once: exactly one incident, every trigger counted on it.
            def trigger(n: int) -> str:
                details = {"attempt": n}
                key: str = events_client(api).trigger(
                    "Payments API 5xx above 5%", "payments-api", dedup_key="payments-5xx", custom_details=details
                )
                return key

            keys = await asyncio.gather(*(asyncio.to_thread(trigger, n) for n in range(40)))
            assert keys == ["payments-5xx"] * 40
            [incident] = await incidents(http, dedup_key="payments-5xx")
            assert incident["alert_count"] == 40
            assert (incident["severity"], incident["source"]) == ("critical", "payments-api")
            assert incident["version"] == 1  # repeats made no events: the workers are not flooded

            # Acknowledge and resolve by key.
            client = events_client(api)
            assert await asyncio.to_thread(client.acknowledge, "payments-5xx") == "payments-5xx"
            shown = (await http.get(f"/incident/{incident['id']}")).json()
            assert (shown["acknowledged"], shown["status"]) == ("yes", "unresolved")
            assert await asyncio.to_thread(client.resolve, "payments-5xx") == "payments-5xx"
            shown = (await http.get(f"/incident/{incident['id']}")).json()
            assert shown["status"] == "resolved"

            # After the resolve the same key opens a new incident; a trigger without a key gets one.
            await asyncio.to_thread(client.trigger, "Payments API 5xx again", "payments-api", dedup_key="payments-5xx")
            found = await incidents(http, dedup_key="payments-5xx")
            assert len(found) == 2 and found[0]["status"] == "unresolved" and found[0]["id"] != incident["id"]
            generated = await asyncio.to_thread(client.trigger, "Queue backlog", "queue-1", severity="warning")
            assert generated and len(await incidents(http, dedup_key=generated)) == 1

            # An unknown routing key and invalid events are refused with PagerDuty's error shape.
            with pytest.raises(pagerduty.Error) as refused:
                await asyncio.to_thread(events_client(api, "0" * 32).trigger, "x", "y", dedup_key="nope")
            answer = refused.value.response
            assert answer is not None and answer.status_code == 400
            assert answer.json()["status"] == "invalid event"
            assert any("routing_key" in e for e in answer.json()["errors"])
            with pytest.raises(pagerduty.Error) as invalid:
                await asyncio.to_thread(client.send_event, "trigger", dedup_key="no-payload")
            answer = invalid.value.response
            assert answer is not None and answer.status_code == 400
            assert answer.json()["errors"] == ["'payload' is required for event_action trigger"]
            bad_severity = await http.post(
                "/v2/enqueue",
                json={
                    "routing_key": ROUTING_KEY,
                    "event_action": "trigger",
                    "payload": {"summary": "x", "source": "y", "severity": "apocalyptic"},
                },
            )
            assert bad_severity.status_code == 400
            assert "severity" in bad_severity.json()["errors"][0]
            assert await incidents(http, dedup_key="nope") == []

            # The incident.* events reached the Zendesk worker, with the alert fields.
            await wait_for_empty_outbox(stack.database_url)

            async def ticket_solved() -> bool:
                tickets = fake_zendesk.for_incident(incident["id"])
                return len(tickets) == 1 and tickets[0].status == "solved"

            await eventually(ticket_solved, timeout=60, what="the Zendesk ticket to follow the incident")
            ticket = fake_zendesk.only(incident["id"])
            assert ticket.priority == "urgent"
            assert "severity_critical" in ticket.tags
        stored = [s for s in await stream_events(js_client.jetstream()) if s.event.incident_id == incident["id"]]
        assert [s.subject for s in stored] == ["incident.created", "incident.acknowledged", "incident.resolved"]
        assert stored[0].event.data.incident.dedup_key == "payments-5xx"
    finally:
        worker.stop()
