"""The console's timeline names who acted from Slack, Jira or Zendesk, and in which tool."""

from __future__ import annotations

import json

import httpx
from playwright.async_api import Page, expect

from tests.console.support import ConsoleStack, create, sign_in
from tests.support.twoway import jira_headers, two_way_env, zendesk_headers

LIVE_MS = 5000


async def test_the_timeline_shows_outside_actors_and_their_tool(page: Page, stack: ConsoleStack) -> None:
    stack.env.update(two_way_env("bot@example.com") | {"JIRA_ACCOUNT_ID": "557058:the-worker"})
    api = stack.new_api()  # a replica that takes the vendors' signed calls
    try:
        async with stack.client(api) as client:
            incident_id = await create(client, "cache stampede")
        pending = json.dumps(
            {
                "ticket_id": "7",
                "external_id": f"incident-{incident_id}",
                "status": "pending",
                "updated_by": "Grace Hopper",
                "updated_by_email": "grace@example.com",
            }
        ).encode()
        done = json.dumps(
            {
                "webhookEvent": "jira:issue_updated",
                "user": {"accountId": "557058:ada", "displayName": "Ada Lovelace"},
                "issue": {
                    "key": "OPS-7",
                    "fields": {
                        "labels": [f"incident-{incident_id}"],
                        "status": {"name": "Done", "statusCategory": {"key": "done"}},
                    },
                },
                "changelog": {"items": [{"field": "status", "fromString": "To Do", "toString": "Done"}]},
            }
        ).encode()
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as vendor:
            answer = await vendor.post(
                "/integrations/zendesk/webhook", content=pending, headers=zendesk_headers(pending)
            )
            assert answer.status_code == 200, answer.text
            answer = await vendor.post("/integrations/jira/webhook", content=done, headers=jira_headers(done))
            assert answer.status_code == 200, answer.text

        await sign_in(page, api.url)
        await page.goto(f"{api.url}/ui/#/incidents/{incident_id}")
        timeline = page.locator("#incident-timeline li")
        await expect(timeline).to_have_count(3, timeout=LIVE_MS)
        # Newest first: the Jira resolve, the Zendesk acknowledge, then the create.
        await expect(timeline.nth(0)).to_contain_text("Ada Lovelace via Jira resolved")
        await expect(timeline.nth(1)).to_contain_text("Grace Hopper via Zendesk acknowledged")
    finally:
        api.stop()
