"""The whole system against fake Jira, Slack and Zendesk: timeline and links, one request's ids in every
service's logs, and no secret in any log line."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.vendors import jira_env, slack_env, zendesk_env
from tests.support.polling import eventually
from tests.support.processes import Process
from tests.support.services import module_process, service_env
from tests.support.stack import Stack, wait_for_empty_outbox

API_TOKEN = "tok3nSecretValue42"


def json_lines(process: Process) -> list[dict[str, object]]:
    lines = []
    for line in process.output().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
async def test_an_incident_through_all_three_workers(
    stack: Stack, tmp_path: Path, fakes: tuple[FakeJira, FakeSlack, FakeZendesk]
) -> None:
    jira, slack, zendesk = fakes
    stack.extra_env = {"API_TOKENS": f"oncall:{API_TOKEN}"}
    stack.start_eventhandler()
    api = stack.start_api()
    workers = [
        module_process(
            f"worker-{name}", ["services.workers", name], tmp_path, service_env(NATS_URL=stack.nats.url, **env)
        ).start()
        for name, env in (("jira", jira_env(jira)), ("slack", slack_env(slack)), ("zendesk", zendesk_env(zendesk)))
    ]
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    request_id = "req-fullstack-7f3a"
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10, headers=headers) as http:
            created = await http.post(
                "/incident/", json={"message": "payments are failing"}, headers={"X-Request-Id": request_id}
            )
            incident_id = int(created.json()["ID"])
            await http.post(f"/incident/{incident_id}/acknowledge")
            await http.post(f"/incident/{incident_id}/comments", json={"comment": "rolling back"})
            await http.post(f"/incident/{incident_id}/resolve")
            await wait_for_empty_outbox(stack.database_url)

            async def everywhere() -> bool:
                links = (await http.get(f"/incident/{incident_id}")).json().get("links", [])
                return {link["system"] for link in links} == {"jira", "slack", "zendesk"}

            await eventually(everywhere, timeout=60, what="links from all three workers")
            incident = (await http.get(f"/incident/{incident_id}")).json()
            links = {link["system"]: link for link in incident["links"]}
            issue = jira.only(incident_id)
            assert links["jira"]["id"] == issue.key
            assert links["jira"]["url"] == f"{jira.url}/browse/{issue.key}"
            ticket = zendesk.only(incident_id)
            assert links["zendesk"]["id"] == str(ticket.id)
            assert links["zendesk"]["url"] == f"{zendesk.url}/agent/tickets/{ticket.id}"
            assert links["slack"]["url"]

            timeline = (await http.get(f"/incident/{incident_id}/timeline")).json()["items"]
            assert [item["type"] for item in timeline] == [
                "incident.created",
                "incident.acknowledged",
                "incident.commented",
                "incident.resolved",
            ]
            assert {item["actor"] for item in timeline} == {"oncall"}
            assert timeline[0]["request_id"] == request_id
            created_event = timeline[0]["event_id"]
    finally:
        for worker in workers:
            worker.stop()
        stack.stop()

    # One grep follows the change end to end: the same request_id, event_id and incident_id everywhere.
    assert stack.api is not None and stack.eventhandler is not None

    # A worker's coalesced pass lists the events and requests it covered (`event_ids`, `request_ids`).
    def carries(line: dict[str, Any], value: str) -> bool:
        return line.get("request_id") == value or value in (line.get("request_ids") or [])

    for process in (stack.api.process, stack.eventhandler, *workers):
        lines = json_lines(process)
        assert any(carries(line, request_id) for line in lines), f"{process.name} lacks request_id"
        tagged = [line for line in lines if carries(line, request_id)]
        assert any(
            line.get("event_id") == created_event or created_event in str(line.get("event_ids", "")) for line in tagged
        ), f"{process.name} lacks event_id"
        assert any(str(line.get("incident_id")) == str(incident_id) for line in tagged), (
            f"{process.name} lacks incident_id"
        )

    # Secrets never reach a log line.
    secrets = [
        API_TOKEN,
        jira.token,
        slack.token,
        zendesk.token,
        "incidents-test",
        base64.b64encode(f"{jira.email}:{jira.token}".encode()).decode(),
        base64.b64encode(f"{zendesk.email}/token:{zendesk.token}".encode()).decode(),
    ]
    for process in (stack.api.process, stack.eventhandler, *workers):
        text = process.output()
        for secret in secrets:
            assert secret not in text, f"{process.name} logged a secret"
