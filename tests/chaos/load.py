"""Concurrent API clients doing random actions on many incidents, and tolerating an API that comes and goes.

An action counts as ok only on a 200. A refused connection surely changed nothing; a dropped one may have:
either way the final truth is read from the database, not from what the clients believe.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.twoway import jira_headers, slack_click_body, slack_headers, zendesk_headers

# Relative weights of the actions on an existing incident.
ACTIONS: dict[str, int] = {
    "acknowledge": 12,
    "unacknowledge": 8,
    "comment": 26,
    "resolve": 12,
    "reopen": 10,
    "edit": 10,
    "put": 8,
    "delete": 3,
    # Responders acting from outside: signed Slack clicks (some on stale messages), Jira and Zendesk webhooks.
    "slack": 5,
    "jira": 3,
    "zendesk": 3,
}
OUTSIDE_ACTIONS = ("slack", "jira", "zendesk")
SLACK_BUTTONS = ("acknowledge", "resolve", "reopen")
JIRA_STATUSES = (("Done", "done"), ("To Do", "new"), ("In Progress", "indeterminate"))
ZENDESK_STATUSES = ("solved", "open", "pending", "closed", "new", "on-hold")
PAUSE_AFTER_REFUSED = 0.2
"""A refused connection means the API is down: the client's retry backoff before its next action."""


@dataclass(frozen=True)
class LoadPlan:
    incidents: int = 150
    actions: int = 1500
    clients: int = 6
    rate: float = 15.0
    """Actions per second over all clients (the schedule, so that chaos has time to happen)."""
    seed: int = 1


@dataclass
class LoadStats:
    attempted: int = 0
    ok: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    created: list[int] = field(default_factory=list)
    comments: list[tuple[int, str]] = field(default_factory=list)
    """Comments the API acknowledged (200), by incident: each must be in the database at the end."""


@dataclass
class Request:
    action: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    content: bytes | None = None
    """A signed body sent as it is (the vendors' requests), with `headers`."""
    headers: dict[str, str] | None = None


class Load:
    def __init__(self, api_url: str | Sequence[str], plan: LoadPlan) -> None:
        """`api_url`: one API, or several replicas that the clients share out (client i uses replica i mod n)."""
        self.api_urls = [api_url] if isinstance(api_url, str) else list(api_url)
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.stats = LoadStats()
        self.known: list[int] = []
        self._next = 0
        self._serial = 0

    def _take_slot(self) -> int | None:
        if self._next >= self.plan.actions:
            return None
        self._next += 1
        return self._next - 1

    def _text(self, what: str) -> str:
        self._serial += 1
        return f"{what} {self._serial}"

    def choose(self, slot: int) -> Request:
        plan, rng = self.plan, self.rng
        creates_left = plan.incidents - len(self.stats.created)
        actions_left = max(plan.actions - slot, 1)
        if not self.known or (creates_left > 0 and rng.random() < 1.5 * creates_left / actions_left):
            return Request("create", "POST", "/incident/", {"message": self._text("incident")})
        incident = rng.choice(self.known)
        action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        base = f"/incident/{incident}"
        if action == "comment":
            return Request(action, "POST", f"{base}/comments", {"comment": self._text(f"comment on {incident}:")})
        if action == "edit":
            return Request(action, "PUT", base, {"message": self._text(f"message of {incident}, edit")})
        if action == "put":
            body: dict[str, Any] = {"message": self._text(f"message of {incident}, put")}
            if rng.random() < 0.6:
                body["acknowledged"] = rng.choice(["yes", "no"])
            if rng.random() < 0.6:
                body["comments"] = [self._text(f"put comment on {incident}:") for _ in range(rng.randint(1, 2))]
            if rng.random() < 0.4:
                body["status"] = rng.choice(["resolved", "unresolved"])
            return Request(action, "PUT", base, body)
        if action == "delete":
            return Request(action, "DELETE", base)
        if action in OUTSIDE_ACTIONS:
            return self._outside(action, incident)
        return Request(action, "POST", f"{base}/{action}")

    def _outside(self, vendor: str, incident: int) -> Request:
        """A vendor's signed request about the incident, in its real shape."""
        rng = self.rng
        if vendor == "slack":
            # The version the button was drawn for: often older than the incident's (a stale message).
            button = {"action_id": rng.choice(SLACK_BUTTONS), "value": f"{incident}:{rng.randint(1, 30)}"}
            user = f"responder{rng.randint(1, 5)}"
            body = slack_click_body(button, user=user, ts="1700000000.000100", channel="C0CHAOS")
            return Request(
                "slack", "POST", "/integrations/slack/interactions", content=body, headers=slack_headers(body)
            )
        if vendor == "jira":
            name, category = rng.choice(JIRA_STATUSES)
            payload = {
                "webhookEvent": "jira:issue_updated",
                "user": {
                    "accountId": f"557058:person{rng.randint(1, 3)}",
                    "displayName": f"Person {rng.randint(1, 3)}",
                },
                "issue": {
                    "key": f"OPS-{incident}",
                    "fields": {
                        "labels": [f"incident-{incident}"],
                        "status": {"name": name, "statusCategory": {"key": category}},
                    },
                },
                "changelog": {"items": [{"field": "status", "fromString": "Earlier", "toString": name}]},
            }
            body = json.dumps(payload).encode()
            return Request("jira", "POST", "/integrations/jira/webhook", content=body, headers=jira_headers(body))
        payload_z = {
            "ticket_id": str(incident),
            "external_id": f"incident-{incident}",
            "status": rng.choice(ZENDESK_STATUSES),
            "updated_by": f"Agent {rng.randint(1, 3)}",
            "updated_by_email": f"agent{rng.randint(1, 3)}@example.com",
        }
        body = json.dumps(payload_z).encode()
        return Request("zendesk", "POST", "/integrations/zendesk/webhook", content=body, headers=zendesk_headers(body))

    async def run(self, stop: asyncio.Event | None = None) -> LoadStats:
        started = time.monotonic()
        clients = [httpx.AsyncClient(base_url=url, timeout=10) for url in self.api_urls]
        try:
            await asyncio.gather(
                *(self._client(clients[i % len(clients)], started, stop) for i in range(self.plan.clients))
            )
        finally:
            for http in clients:
                await http.aclose()
        return self.stats

    async def _client(self, http: httpx.AsyncClient, started: float, stop: asyncio.Event | None) -> None:
        while stop is None or not stop.is_set():
            slot = self._take_slot()
            if slot is None:
                return
            due = started + slot / self.plan.rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # the schedule: `rate` actions per second
            request = self.choose(slot)
            outcome = await self._send(http, request)
            self.stats.attempted += 1
            self.stats.outcomes[outcome] += 1
            self.stats.by_action[f"{request.action}:{outcome}"] += 1
            if outcome == "refused":
                await asyncio.sleep(PAUSE_AFTER_REFUSED)

    async def _send(self, http: httpx.AsyncClient, request: Request) -> str:
        try:
            if request.content is not None:
                response = await http.request(
                    request.method, request.path, content=request.content, headers=request.headers
                )
            else:
                response = await http.request(request.method, request.path, json=request.body)
        except httpx.ConnectError:
            return "refused"
        except httpx.HTTPError:
            return "unknown"  # sent, and the answer lost: it may or may not have happened
        if response.status_code != 200 and not (request.content is not None and response.status_code == 202):
            return f"http-{response.status_code}"
        self.stats.ok += 1
        if request.action == "create":
            incident = int(response.json()["ID"])
            self.stats.created.append(incident)
            self.known.append(incident)
        elif request.action == "comment" and request.body is not None:
            self.stats.comments.append((int(request.path.split("/")[2]), str(request.body["comment"])))
        elif request.action == "delete":
            incident = int(request.path.rsplit("/", 1)[1])
            if incident in self.known:
                self.known.remove(incident)
        return "ok"
