"""Signing like Slack, Jira and Zendesk do (real HMACs computed here), and delivering their webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.fakes.slack import FakeSlack

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JIRA_SECRET = "jira-webhook-secret-c0ffee"
RETRY_BACKOFF_SECONDS = 0.5
ZENDESK_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="


def two_way_env(zendesk_email: str) -> dict[str, str]:
    return {
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
        "JIRA_WEBHOOK_SECRET": JIRA_SECRET,
        "ZENDESK_WEBHOOK_SECRET": ZENDESK_SECRET,
        "ZENDESK_EMAIL": zendesk_email,
    }


def slack_headers(body: bytes, *, timestamp: int | None = None, secret: str = SLACK_SECRET) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": f"v0={digest}",
    }


def jira_headers(body: bytes, *, identifier: str | None = None, secret: str = JIRA_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature": f"sha256={digest}",
        "X-Atlassian-Webhook-Identifier": identifier or str(uuid.uuid4()),
    }


def zendesk_headers(
    body: bytes, *, timestamp: datetime | None = None, invocation: str | None = None, secret: str = ZENDESK_SECRET
) -> dict[str, str]:
    stamp = (timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": digest,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Id": "01HZX0WEBHOOK",
        "X-Zendesk-Webhook-Invocation-Id": invocation or str(uuid.uuid4().int)[:12],
    }


def slack_click_body(button: dict[str, Any], *, user: str, ts: str, channel: str) -> bytes:
    """Slack's `block_actions` interactivity request for a click on `button`, form-encoded."""
    now = f"{time.time():.6f}"
    payload = {
        "type": "block_actions",
        "user": {"id": f"U{abs(hash(user)) % 10**9:09d}", "username": user, "name": user, "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "verification-token-not-used",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{now}.trigger",
        "team": {"id": "T0TEAM", "domain": "acme"},
        "channel": {"id": channel, "name": "incidents"},
        "message": {"type": "message", "ts": ts, "text": "incident"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": button.get("block_id", "incident-actions"),
                "text": button.get("text", {"type": "plain_text", "text": ""}),
                "value": button["value"],
                "action_ts": now,
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def shown_button(slack: FakeSlack, incident_id: int, action_id: str) -> dict[str, Any]:
    """The button `action_id` on the incident's message as Slack shows it now."""
    root = slack.only(incident_id)
    button = slack.button(root.ts, action_id)
    assert button is not None, f"no {action_id} button on incident {incident_id}'s message: {root.blocks}"
    return {**button, "ts": root.ts}


def click(
    api_url: str, slack: FakeSlack, incident_id: int, action_id: str, user: str, seen: dict[str, Any] | None = None
) -> httpx.Response:
    """A person clicks a button on the incident's message: as it shows now, or as they saw it (`seen`)."""
    button = seen or shown_button(slack, incident_id, action_id)
    body = slack_click_body(button, user=user, ts=button["ts"], channel=slack.channel)
    url = f"{api_url}/integrations/slack/interactions"
    return httpx.post(url, content=body, headers=slack_headers(body), timeout=10)


@dataclass
class WebhookRelay:
    """Delivers the fakes' webhooks to the API as Jira and Zendesk do: signed, asynchronously, retried on
    408/409/425/429/5xx, and logs every answer."""

    api_url: str
    answers: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: int = 0

    def jira(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        headers = jira_headers(body)
        self._send("jira", "/integrations/jira/webhook", body, lambda: headers)

    def zendesk(self, payload: dict[str, str]) -> None:
        body = json.dumps(payload).encode()
        invocation = str(uuid.uuid4().int)[:12]
        self._send(
            "zendesk", "/integrations/zendesk/webhook", body, lambda: zendesk_headers(body, invocation=invocation)
        )

    def _send(self, vendor: str, path: str, body: bytes, headers: Any) -> None:
        with self.lock:
            self.pending += 1
        threading.Thread(target=self._deliver, args=(vendor, path, body, headers), daemon=True).start()

    def _deliver(self, vendor: str, path: str, body: bytes, headers: Any) -> None:
        try:
            for _ in range(20):
                try:
                    response = httpx.post(self.api_url + path, content=body, headers=headers(), timeout=10)
                except httpx.HTTPError:
                    response = None
                if response is not None:
                    with self.lock:
                        self.answers.append((vendor, response.status_code, response.json()))
                    if response.status_code not in (408, 409, 425, 429) and response.status_code < 500:
                        return
                time.sleep(RETRY_BACKOFF_SECONDS)  # the vendor's own retry delay, not a synchronisation
        finally:
            with self.lock:
                self.pending -= 1

    def idle(self) -> bool:
        with self.lock:
            return self.pending == 0

    def outcomes(self, vendor: str) -> list[str]:
        with self.lock:
            return [str(body.get("outcome")) for v, _, body in self.answers if v == vendor]
