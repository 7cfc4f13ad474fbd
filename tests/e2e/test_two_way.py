"""Two-way sync against the running system: Slack clicks, Jira and Zendesk webhooks in the vendors' real
shapes, signed with HMACs computed here; stale clicks; and changes made in each tool that reach the other
two and come back as echoes that change nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.vendors import jira_env, slack_env, zendesk_env
from tests.support.mariadb import MariaDB
from tests.support.metrics import sample
from tests.support.polling import eventually
from tests.support.processes import NatsServer, Process
from tests.support.services import ApiProcess, module_process, service_env
from tests.support.stack import Stack, wait_for_empty_outbox, wait_for_eventhandler
from tests.support.twoway import (
    SLACK_SECRET,
    WebhookRelay,
    click,
    jira_headers,
    shown_button,
    slack_click_body,
    slack_headers,
    two_way_env,
    zendesk_headers,
)

MARIADB = pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
SLACK = "/integrations/slack/interactions"
JIRA = "/integrations/jira/webhook"
ZENDESK = "/integrations/zendesk/webhook"


@dataclass
class System:
    api: str
    http: httpx.AsyncClient
    jira: FakeJira
    slack: FakeSlack
    zendesk: FakeZendesk
    relay: WebhookRelay
    workers: list[Process]

    async def incident(self, incident_id: int) -> dict[str, Any]:
        return dict((await self.http.get(f"/incident/{incident_id}")).json())

    async def timeline(self, incident_id: int) -> list[tuple[str, str]]:
        items = (await self.http.get(f"/incident/{incident_id}/timeline")).json()["items"]
        return [(item["type"].removeprefix("incident."), item["actor"]) for item in items]

    async def create(self, message: str) -> int:
        return int((await self.http.post("/incident/", json={"message": message})).json()["ID"])

    async def metric(self, name: str, **labels: str) -> float:
        return sample((await self.http.get("/metrics")).text, name, **labels) or 0.0


async def _system(
    stack: Stack, tmp_path: Path, fakes: tuple[FakeJira, FakeSlack, FakeZendesk], *, workers: bool
) -> AsyncIterator[System]:
    jira, slack, zendesk = fakes
    stack.extra_env = two_way_env(zendesk.email) | {
        "JIRA_BASE_URL": jira.url,
        "JIRA_EMAIL": jira.email,
        "JIRA_API_TOKEN": jira.token,
    }
    stack.start_eventhandler()
    api = stack.start_api()
    relay = WebhookRelay(api.url)
    jira.on_status_change, zendesk.on_status_change = relay.jira, relay.zendesk
    started = []
    if workers:
        for name, env in (
            ("jira", jira_env(jira)),
            ("slack", slack_env(slack) | {"SLACK_SIGNING_SECRET": SLACK_SECRET}),
            ("zendesk", zendesk_env(zendesk)),
        ):
            worker_env = service_env(NATS_URL=stack.nats.url, WORKER_RETRY_BASE_SECONDS="0.1", **env)
            started.append(module_process(f"worker-{name}", ["services.workers", name], tmp_path, worker_env).start())
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            await wait_for_eventhandler(http)
            yield System(api.url, http, jira, slack, zendesk, relay, started)
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture
async def system(stack: Stack, tmp_path: Path, fakes: tuple[FakeJira, FakeSlack, FakeZendesk]) -> AsyncIterator[System]:
    async for running in _system(stack, tmp_path, fakes, workers=True):
        yield running


@pytest.fixture
async def api_only(
    stack: Stack, tmp_path: Path, fakes: tuple[FakeJira, FakeSlack, FakeZendesk]
) -> AsyncIterator[System]:
    async for running in _system(stack, tmp_path, fakes, workers=False):
        yield running


def _click_body(incident_id: int, version: int, action: str, user: str = "alice") -> bytes:
    button = {"action_id": action, "value": f"{incident_id}:{version}", "block_id": "incident-actions"}
    return slack_click_body(button, user=user, ts="1700000000.000100", channel="C0INCIDENTS")


def _jira_body(
    incident_id: int, status: str, category: str, *, account: str = "557058:ada", name: str = "Ada"
) -> bytes:
    payload = {
        "timestamp": int(time.time() * 1000),
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": account, "displayName": name},
        "issue": {
            "id": "10001",
            "key": "OPS-1",
            "fields": {
                "labels": [f"incident-{incident_id}"] if incident_id else ["unrelated"],
                "status": {"name": status, "statusCategory": {"key": category}},
            },
        },
        "changelog": {"items": [{"field": "status", "fromString": "To Do", "toString": status}]},
    }
    return json.dumps(payload).encode()


def _zendesk_body(incident_id: int, status: str, *, name: str = "Grace", email: str = "grace@example.com") -> bytes:
    payload = {
        "ticket_id": "101",
        "external_id": f"incident-{incident_id}",
        "status": status,
        "updated_by": name,
        "updated_by_email": email,
    }
    return json.dumps(payload).encode()


@MARIADB
async def test_slack_clicks_are_signed_fresh_and_act_once(api_only: System) -> None:
    s = api_only
    incident_id = await s.create("checkout is down")
    body = _click_body(incident_id, 1, "acknowledge")
    good = slack_headers(body)

    tampered = body.replace(b"acknowledge", b"resolve")
    assert (await s.http.post(SLACK, content=tampered, headers=good)).status_code == 401
    old = slack_headers(body, timestamp=int(time.time()) - 301)
    assert (await s.http.post(SLACK, content=body, headers=old)).status_code == 401
    for missing in ("X-Slack-Signature", "X-Slack-Request-Timestamp"):
        headers = {k: v for k, v in good.items() if k != missing}
        answer = await s.http.post(SLACK, content=body, headers=headers)
        assert answer.status_code == 401 and answer.json()["status"] == "Unauthorized"
    assert (await s.incident(incident_id))["acknowledged"] == "no"

    started = time.monotonic()
    answer = await s.http.post(SLACK, content=body, headers=good)
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied"
    assert time.monotonic() - started < 3
    replayed = await s.http.post(SLACK, content=body, headers=good)
    assert replayed.status_code == 200 and replayed.json()["outcome"] == "replayed"

    assert (await s.incident(incident_id))["acknowledged"] == "yes"
    assert await s.timeline(incident_id) == [("created", "anonymous"), ("acknowledged", "slack:alice")]
    assert await s.metric("incidents_api_integration_bad_signatures_total", vendor="slack") == 4


@MARIADB
async def test_jira_webhooks_are_signed_and_a_retry_acts_once(api_only: System) -> None:
    s = api_only
    incident_id = await s.create("queue is backing up")
    body = _jira_body(incident_id, "Done", "done")
    good = jira_headers(body, identifier="b7c1e9a4-retry-1")

    tampered = body.replace(b"Ada", b"Eve")
    assert (await s.http.post(JIRA, content=tampered, headers=good)).status_code == 401
    missing = {k: v for k, v in good.items() if k != "X-Hub-Signature"}
    assert (await s.http.post(JIRA, content=body, headers=missing)).status_code == 401
    assert (await s.incident(incident_id))["status"] == "unresolved"

    assert (await s.http.post(JIRA, content=body, headers=good)).json()["outcome"] == "applied"
    assert (await s.http.post(f"/incident/{incident_id}/reopen")).status_code == 200
    # Jira retries with the same X-Atlassian-Webhook-Identifier: it must not resolve again.
    retried = await s.http.post(JIRA, content=body, headers=good)
    assert retried.status_code == 200 and retried.json()["outcome"] == "replayed"
    assert (await s.incident(incident_id))["status"] == "unresolved"

    back = _jira_body(incident_id, "In Review", "indeterminate", name="Ada")  # a custom status, by its category
    assert (await s.http.post(JIRA, content=back, headers=jira_headers(back))).json()["outcome"] == "applied"
    assert await s.timeline(incident_id) == [
        ("created", "anonymous"),
        ("resolved", "jira:Ada"),
        ("reopened", "anonymous"),
    ]
    # The worker's own account (GET /rest/api/3/myself) is an echo.
    echo = _jira_body(incident_id, "Done", "done", account=s.jira.account_id, name=s.jira.display_name)
    answer = await s.http.post(JIRA, content=echo, headers=jira_headers(echo))
    assert answer.status_code == 200 and answer.json()["outcome"] == "echo"
    assert (await s.incident(incident_id))["status"] == "unresolved"
    assert s.jira.count("GET", "/rest/api/3/myself") == 1
    assert await s.metric("incidents_api_integration_bad_signatures_total", vendor="jira") == 2


@MARIADB
async def test_zendesk_webhooks_are_signed_fresh_and_a_retry_acts_once(api_only: System) -> None:
    s = api_only
    incident_id = await s.create("email bounces")
    body = _zendesk_body(incident_id, "Solved")
    good = zendesk_headers(body, invocation="900001")

    tampered = body.replace(b"Solved", b"Open")
    assert (await s.http.post(ZENDESK, content=tampered, headers=good)).status_code == 401
    for skew in (timedelta(seconds=-301), timedelta(seconds=301)):
        stale = zendesk_headers(body, timestamp=datetime.now(UTC) + skew)
        assert (await s.http.post(ZENDESK, content=body, headers=stale)).status_code == 401
    missing = {k: v for k, v in good.items() if k != "X-Zendesk-Webhook-Signature"}
    assert (await s.http.post(ZENDESK, content=body, headers=missing)).status_code == 401
    assert (await s.incident(incident_id))["status"] == "unresolved"

    assert (await s.http.post(ZENDESK, content=body, headers=good)).json()["outcome"] == "applied"
    await s.http.post(f"/incident/{incident_id}/reopen")
    retried = await s.http.post(ZENDESK, content=body, headers=zendesk_headers(body, invocation="900001"))
    assert retried.status_code == 200 and retried.json()["outcome"] == "replayed"
    assert (await s.incident(incident_id))["status"] == "unresolved"

    pending = _zendesk_body(incident_id, "pending")
    assert (await s.http.post(ZENDESK, content=pending, headers=zendesk_headers(pending))).status_code == 200
    hold = _zendesk_body(incident_id, "on-hold")
    assert (await s.http.post(ZENDESK, content=hold, headers=zendesk_headers(hold))).json()["outcome"] == "ignored"
    echo = _zendesk_body(incident_id, "solved", name="Bot", email=s.zendesk.email.upper())
    assert (await s.http.post(ZENDESK, content=echo, headers=zendesk_headers(echo))).json()["outcome"] == "echo"
    unknown = _zendesk_body(incident_id, "escalated")
    answer = await s.http.post(ZENDESK, content=unknown, headers=zendesk_headers(unknown))
    assert answer.status_code == 400 and "unknown status" in answer.json()["error"]

    assert await s.timeline(incident_id) == [
        ("created", "anonymous"),
        ("resolved", "zendesk:Grace"),
        ("reopened", "anonymous"),
        ("acknowledged", "zendesk:Grace"),
    ]
    assert await s.metric("incidents_api_integration_bad_signatures_total", vendor="zendesk") == 4


@MARIADB
async def test_objects_we_do_not_know_change_nothing(api_only: System) -> None:
    s = api_only
    jira = _jira_body(0, "Done", "done")
    answer = await s.http.post(JIRA, content=jira, headers=jira_headers(jira))
    assert answer.status_code == 202 and answer.json()["outcome"] == "unknown"
    zendesk = _zendesk_body(987654, "solved")
    answer = await s.http.post(ZENDESK, content=zendesk, headers=zendesk_headers(zendesk))
    assert answer.status_code == 202 and answer.json()["outcome"] == "unknown"
    slack = _click_body(987654, 3, "resolve")
    answer = await s.http.post(SLACK, content=slack, headers=slack_headers(slack))
    assert answer.status_code == 200 and answer.json()["outcome"] == "unknown"
    garbage = b"payload=%7Bnot-json"
    answer = await s.http.post(SLACK, content=garbage, headers=slack_headers(garbage))
    assert answer.status_code == 400 and answer.json()["status"] == "Bad Request"
    assert (await s.http.get("/incident/")).json()["items"] == []


@MARIADB
async def test_a_stale_click_never_undoes_a_newer_change(api_only: System) -> None:
    s = api_only
    incident_id = await s.create("disk full")
    await s.http.post(f"/incident/{incident_id}/resolve")  # v2; the message still shows v1's buttons
    body = _click_body(incident_id, 1, "acknowledge")
    assert (await s.http.post(SLACK, content=body, headers=slack_headers(body))).json()["outcome"] == "stale"
    await s.http.post(f"/incident/{incident_id}/reopen")  # v3
    await s.http.post(f"/incident/{incident_id}/resolve")  # v4: newer than the Reopen drawn at v2
    reopen = _click_body(incident_id, 2, "reopen", user="bob")
    assert (await s.http.post(SLACK, content=reopen, headers=slack_headers(reopen))).json()["outcome"] == "stale"
    incident = await s.incident(incident_id)
    assert (incident["status"], incident["acknowledged"]) == ("resolved", "no")
    assert [actor for _, actor in await s.timeline(incident_id)] == ["anonymous"] * 4


@MARIADB
async def test_resolve_racing_an_acknowledge_click_ends_resolved(system: System) -> None:
    s = system
    ids = [await s.create(f"race {n}") for n in range(8)]

    async def drawn() -> bool:
        return all(_has_button_now(s.slack, i) for i in ids)

    await eventually(drawn, timeout=60, what="buttons on the messages")

    # What carol sees: each message drawn before the resolve that races her click.
    seen = {i: shown_button(s.slack, i, "acknowledge") for i in ids}

    async def resolve(incident_id: int) -> int:
        return (await s.http.post(f"/incident/{incident_id}/resolve")).status_code

    async def acknowledge(incident_id: int) -> int:
        answer = await asyncio.to_thread(click, s.api, s.slack, incident_id, "acknowledge", "carol", seen[incident_id])
        return answer.status_code

    answers = await asyncio.gather(*(f(i) for i in ids for f in (resolve, acknowledge)))
    assert set(answers) == {200}
    for incident_id in ids:
        incident = await s.incident(incident_id)
        assert incident["status"] == "resolved", incident


@MARIADB
async def test_a_change_in_each_tool_reaches_the_others_and_its_echoes_change_nothing(
    system: System, stack: Stack
) -> None:
    s = system
    incident_id = await s.create("payments failing")
    await eventually(lambda: _everywhere(s, incident_id), timeout=60, what="the incident in all three tools")
    issue, ticket = s.jira.only(incident_id), s.zendesk.only(incident_id)

    # Slack: Acknowledge → a Jira comment and a Zendesk note, once each, naming the actor.
    assert click(s.api, s.slack, incident_id, "acknowledge", "alice").status_code == 200
    said = "Incident acknowledged by slack:alice."

    async def acknowledged_everywhere() -> bool:
        jira_notes = [t for t in issue.comment_texts() if t.startswith(said)]
        zendesk_notes = [b for b in ticket.comment_bodies() if b.startswith(said)]
        root = s.slack.only(incident_id)
        assert len(jira_notes) == 1, issue.comment_texts()
        assert len(zendesk_notes) == 1, ticket.comment_bodies()
        assert "acknowledged by slack:alice" in str(root.blocks), root.blocks
        return True

    await eventually(acknowledged_everywhere, timeout=60, what="the acknowledgement in Jira, Zendesk and Slack")

    # Jira: a person moves the issue to Done → resolved; Zendesk's solve (by the worker) comes back as an echo.
    s.jira.move_by_person(issue.key, "Done", "557058:ada", "Ada Lovelace")

    async def resolved_everywhere() -> bool:
        root = s.slack.only(incident_id)
        return (
            ticket.status == "solved"
            and s.slack.button(root.ts, "reopen") is not None
            and "resolved by jira:Ada Lovelace" in str(root.blocks)
            and "echo" in s.relay.outcomes("zendesk")
        )

    await eventually(resolved_everywhere, timeout=60, what="the Jira resolve in Slack and Zendesk")

    # Zendesk: an agent reopens the ticket → reopened; Jira's transition (by the worker) comes back as an echo.
    s.zendesk.set_status_by_person(ticket.id, "open", "Grace Hopper", "grace@example.com")

    async def reopened_everywhere() -> bool:
        root = s.slack.only(incident_id)
        return (
            issue.status == "To Do"
            and s.slack.button(root.ts, "resolve") is not None
            and s.relay.outcomes("jira").count("echo") >= 1
            and s.relay.idle()
        )

    await eventually(reopened_everywhere, timeout=60, what="the Zendesk reopen in Jira and Slack")

    # A last change from the API, seen by all three workers, marks the end of everything before it.
    await s.http.post(f"/incident/{incident_id}/comments", json={"comment": "all clear"})
    await wait_for_empty_outbox(stack.database_url)

    async def comment_everywhere() -> bool:
        root = s.slack.only(incident_id)
        return (
            any("all clear" in t for t in issue.comment_texts())
            and any("all clear" in b for b in ticket.comment_bodies())
            and any("all clear" in r for r in s.slack.replies(root.ts))
            and s.relay.idle()
        )

    await eventually(comment_everywhere, timeout=60, what="the last comment everywhere")
    calls = (len(s.jira.requests), len(s.slack.requests), len(s.zendesk.requests))
    webhooks = (s.jira.webhooks_sent, s.zendesk.webhooks_sent)

    assert await s.timeline(incident_id) == [
        ("created", "anonymous"),
        ("acknowledged", "slack:alice"),
        ("resolved", "jira:Ada Lovelace"),
        ("reopened", "zendesk:Grace Hopper"),
        ("commented", "anonymous"),
    ]
    assert s.relay.outcomes("jira") == ["applied", "echo"]
    assert set(s.relay.outcomes("zendesk")) == {"applied", "echo"}
    assert s.relay.outcomes("zendesk").count("applied") == 1
    assert next(t for t in issue.comment_texts() if "acknowledged" in t).startswith(said)
    assert sum(1 for b in ticket.comment_bodies() if b.startswith(said)) == 1
    # Nothing moves any more: a fresh sentinel goes through, and no vendor saw any other call or webhook.
    await s.http.post(f"/incident/{incident_id}/comments", json={"comment": "sentinel"})

    async def sentinel_everywhere() -> bool:
        root = s.slack.only(incident_id)
        return (
            any("sentinel" in t for t in issue.comment_texts())
            and any("sentinel" in b for b in ticket.comment_bodies())
            and any("sentinel" in r for r in s.slack.replies(root.ts))
        )

    await eventually(sentinel_everywhere, timeout=60, what="the sentinel comment everywhere")
    assert (s.jira.webhooks_sent, s.zendesk.webhooks_sent) == webhooks
    after = (len(s.jira.requests), len(s.slack.requests), len(s.zendesk.requests))
    assert after[0] - calls[0] == 1 and after[2] - calls[2] == 1, (calls, after)  # one comment each
    assert after[1] - calls[1] == 1, (calls, after)  # one thread reply, no chat.update
    assert s.relay.idle() and len(s.relay.answers) == sum(webhooks)


async def _everywhere(s: System, incident_id: int) -> bool:
    return bool(
        s.jira.with_label(f"incident-{incident_id}")
        and s.zendesk.for_incident(incident_id)
        and _has_button_now(s.slack, incident_id)
    )


def _has_button_now(slack: FakeSlack, incident_id: int) -> bool:
    roots = slack.roots_for(incident_id)
    return bool(roots) and slack.button(roots[0].ts, "acknowledge") is not None


async def test_while_the_database_is_down_vendors_are_told_to_retry(
    tmp_path: Path,
    own_mariadb: MariaDB,
    own_database_url: str,
    nats_server: NatsServer,
    fakes: tuple[FakeJira, FakeSlack, FakeZendesk],
) -> None:
    url = own_database_url
    env = two_way_env(fakes[2].email) | {"JIRA_ACCOUNT_ID": "557058:the-worker"}
    api = ApiProcess(tmp_path, url, nats_server.url, env).start()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=15) as http:
            incident_id = int((await http.post("/incident/", json={"message": "before the outage"})).json()["ID"])
            own_mariadb.stop()
            click_body, jira_body = _click_body(incident_id, 1, "acknowledge"), _jira_body(incident_id, "Done", "done")
            zendesk_body = _zendesk_body(incident_id, "solved")
            calls = [
                (SLACK, click_body, slack_headers(click_body)),
                (JIRA, jira_body, jira_headers(jira_body)),
                (ZENDESK, zendesk_body, zendesk_headers(zendesk_body)),
            ]
            for path, body, headers in calls:
                answer = await http.post(path, content=body, headers=headers)
                assert answer.status_code == 429, (path, answer.text)
                assert answer.headers["retry-after"] == "5"
                assert answer.json()["status"] == "Too Many Requests"
            own_mariadb.restart()
            jira = _jira_body(incident_id, "Done", "done")

            async def applied_after_restart() -> bool:
                answer = await http.post(JIRA, content=jira, headers=jira_headers(jira))
                return answer.status_code == 200

            await eventually(applied_after_restart, timeout=60, interval=0.5, what="the Jira retry to be applied")
            assert (await http.get(f"/incident/{incident_id}")).json()["status"] == "resolved"
    finally:
        api.stop()
