"""`python -m tests.console.screenshots [folder]`: the README's pictures of the console, from a real stack.

Starts nats-server, the event handler, the API and the three workers against fake Jira, Slack and
Zendesk in a temporary folder, adds a few incidents, and saves the list and an incident at 1280 x 800
(console-list.png, console-incident.png) and at phone width (console-phone-list.png, console-phone-incident.png).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import ViewportSize, async_playwright, expect

from tests.console.support import ConsoleStack, console_stack, create, launch, outside_systems, sign_in
from tests.support.polling import eventually
from tests.support.processes import ROOT

PHONE = ViewportSize(width=390, height=844)
DESKTOP = ViewportSize(width=1280, height=800)
INCIDENTS: list[tuple[str, list[str], list[str], dict[str, object]]] = [
    (
        "Disk 95% full on db-7 (/var/lib/mysql)",
        ["acknowledge", "resolve"],
        ["purged binlogs older than 3 days"],
        {"severity": "warning", "source": "prometheus", "labels": {"host": "db-7"}},
    ),
    ("Checkout p99 latency above 2 s in eu-west-1", ["acknowledge"], [], {"severity": "error"}),
    ("TLS certificate for api.example.com expires in 6 days", [], [], {"severity": "info"}),
    (
        "Payments webhook returns 502 for 12% of requests",
        ["acknowledge"],
        ["rolled back deploy 2024.11.3"],
        {
            "severity": "critical",
            "source": "alertmanager",
            "labels": {"service": "payments", "region": "eu-west-1"},
            "dedup_key": "payments-webhook-5xx",
        },
    ),
]


BACKGROUND = [
    ("Replication lag above 30 s on db-2", "error"),
    ("Kafka consumer group billing is 40k messages behind", "warning"),
    ("Login failures above 5% in us-east-1", "critical"),
    ("Search index rebuild is taking longer than usual", "info"),
    ("Cache hit ratio dropped below 80% on edge-3", "warning"),
    ("5xx on /api/orders above 1%", "error"),
    ("Cron job nightly-export did not run", None),
    ("Memory pressure on worker pool b", "warning"),
    ("Certificate for mail.example.com expires in 12 days", "info"),
    ("Connection pool exhausted on payments-db", "critical"),
    ("Queue depth growing on notifications", "warning"),
    ("Disk 88% full on logs-1", "info"),
]


async def seed(client: httpx.AsyncClient) -> int:
    for n, (message, severity) in enumerate(BACKGROUND):
        incident_id = await create(client, message, **({"severity": severity} if severity else {}))
        if n % 3 == 0:
            await client.post(f"/incident/{incident_id}/acknowledge")
        if n % 5 == 4:
            await client.post(f"/incident/{incident_id}/resolve")
    last = 0
    for message, actions, comments, fields in INCIDENTS:
        last = await create(client, message, **fields)
        for comment in comments:
            await client.post(f"/incident/{last}/comments", json={"comment": comment})
        for action in actions:
            await client.post(f"/incident/{last}/{action}")
    return last


async def shoot(stack: ConsoleStack, folder: Path) -> None:
    async with stack.client() as client:
        shown = await seed(client)

        async def linked() -> bool:
            links = (await client.get(f"/incident/{shown}")).json().get("links", [])
            return len(links) == 3

        await eventually(linked, timeout=60, what="the workers' links")
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            for prefix, viewport in (("console", DESKTOP), ("console-phone", PHONE)):
                page = await browser.new_page(viewport=viewport, device_scale_factor=1)
                await sign_in(page, stack.api.url)
                await expect(page.locator("#live-state")).to_have_text("Live", timeout=15000)
                await expect(page.locator("#incident-list li").first).to_be_visible()
                await page.screenshot(path=folder / f"{prefix}-list.png")
                await page.goto(f"{stack.api.url}/ui/#/incidents/{shown}")
                await expect(page.get_by_role("link", name="Jira issue", exact=False)).to_be_visible()
                await expect(page.locator("#incident-labels > div")).to_have_count(2)
                await page.get_by_label("Comment", exact=True).fill("customer impact confirmed by support")
                await page.screenshot(path=folder / f"{prefix}-incident.png")
                await page.close()
        finally:
            await browser.close()


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-shots-") as workdir, console_stack(Path(workdir)) as stack:
        with outside_systems(stack):
            asyncio.run(shoot(stack, folder))
    print(f"wrote the list and an incident, desktop and phone (console-*.png), in {folder}")


if __name__ == "__main__":
    main()
