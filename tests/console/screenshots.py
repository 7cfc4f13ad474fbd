"""`python -m tests.console.screenshots [folder]`: the README's pictures of the console, from a real stack.

Starts nats-server, the event handler, the API and the three workers against fake Jira, Slack and
Zendesk in a temporary folder, adds a few incidents, and saves console-list.png and console-incident.png.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import async_playwright, expect

from tests.console.support import ConsoleStack, console_stack, create, launch, outside_systems, sign_in
from tests.support.polling import eventually
from tests.support.processes import ROOT

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


async def seed(client: httpx.AsyncClient) -> int:
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
            page = await browser.new_page(viewport={"width": 1000, "height": 720})
            await sign_in(page, stack.api.url)
            await expect(page.locator("#live-state")).to_have_text("Live", timeout=15000)
            await expect(page.locator("#incident-list .badge.severity")).to_have_count(len(INCIDENTS))
            await page.screenshot(path=folder / "console-list.png")
            phone = await browser.new_page(viewport={"width": 420, "height": 1100}, device_scale_factor=1)
            await sign_in(phone, stack.api.url)
            await phone.goto(f"{stack.api.url}/ui/#/incidents/{shown}")
            await expect(phone.get_by_role("link", name="Jira issue", exact=False)).to_be_visible()
            await expect(phone.locator("#incident-labels > div")).to_have_count(2)
            await phone.get_by_label("Comment").fill("customer impact confirmed by support")
            await phone.screenshot(path=folder / "console-incident.png", full_page=True)
        finally:
            await browser.close()


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-shots-") as workdir, console_stack(Path(workdir)) as stack:
        with outside_systems(stack):
            asyncio.run(shoot(stack, folder))
    print(f"wrote {folder / 'console-list.png'} and {folder / 'console-incident.png'}")


if __name__ == "__main__":
    main()
