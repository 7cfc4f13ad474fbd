"""The console at 3 a.m. in Debian's Chromium: never the wrong incident, outages in plain sight, triage at a glance.

Races are driven by holding the API's answers in Playwright routes until the test lets them go.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Page, Request, Route, expect

from tests.console.support import (
    ACTOR,
    INTEGRATION,
    LIVE_SECONDS,
    ROUTING_KEY,
    BrowserLog,
    ConsoleStack,
    create,
    incident,
    sign_in,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.slow  # end to end: real processes and a real browser

LIVE_MS = LIVE_SECONDS * 1000
LIST = re.compile(r"/incident/\?")
STREAM = "**/incident/stream"
ACTIONS = re.compile(r"^(Acknowledge|Unacknowledge|Resolve|Reopen)$")


async def signed_in(page: Page, stack: ConsoleStack, hash_: str = "") -> None:
    await sign_in(page, stack.api.url)
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15000)
    if hash_:
        await page.goto(f"{stack.api.url}/ui/{hash_}")


class Held:
    """A Playwright route that holds matching requests until released (or lets them through)."""

    def __init__(self, page: Page, pattern: Any, when: Callable[[Request], bool] = lambda _: True) -> None:
        self.page, self.pattern, self.when = page, pattern, when
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.urls: list[str] = []
        self.done = asyncio.Event()

    async def handle(self, route: Route) -> None:
        if not self.when(route.request) or self.arrived.is_set():
            await route.continue_()
            return
        self.urls.append(route.request.url)
        ended = asyncio.get_running_loop().create_future()

        def seen(request: Request) -> None:
            if request is route.request and not ended.done():
                ended.set_result(None)

        self.page.on("requestfinished", seen)
        self.page.on("requestfailed", seen)
        self.arrived.set()
        await self.release.wait()
        try:
            await route.continue_()
        except Exception:  # the page cancelled it meanwhile: that is the point
            self.done.set()
            return
        try:
            await asyncio.wait_for(ended, 10)
        except TimeoutError:
            pass  # cancelled while held: the page reports nothing more about it
        self.done.set()

    async def settle(self) -> None:
        """Lets the held answer go, and returns once the page has had it (or had cancelled it)."""
        self.release.set()
        await asyncio.wait_for(self.done.wait(), 15)
        # Two animation frames: whatever the answer scheduled has run.
        await self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    async def __aenter__(self) -> Held:
        await self.page.route(self.pattern, self.handle)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.release.set()
        await self.page.unroute(self.pattern, self.handle)


@contextlib.asynccontextmanager
async def opened_with_its_read_held(page: Page, stack: ConsoleStack, incident_id: int) -> AsyncIterator[Held]:
    """The incident's page opened, with the API's answer to its read held until the test lets it go."""

    def read(request: Request) -> bool:
        return request.url.endswith(f"/incident/{incident_id}")

    async with Held(page, re.compile(rf"/incident/{incident_id}$"), read) as held:
        await page.goto(f"{stack.api.url}/ui/#/incidents/{incident_id}")
        await held.arrived.wait()
        yield held


# ---------- 1. another incident's data under this incident's heading ----------


async def test_a_missing_incident_opened_after_another_shows_nothing_of_the_other(
    page: Page, stack: ConsoleStack, browser_log: BrowserLog
) -> None:
    browser_log.allow("404 (Not Found)")
    async with stack.client() as client:
        first = await create(client, "first incident, acknowledged")
        assert (await client.post(f"/incident/{first}/acknowledge")).status_code == 200
    await signed_in(page, stack, f"#/incidents/{first}")
    await expect(page.locator("#incident-message")).to_have_text("first incident, acknowledged")
    await expect(page.get_by_role("button", name="Unacknowledge")).to_be_visible()

    await page.goto(f"{stack.api.url}/ui/#/incidents/99999")
    await expect(page.get_by_role("heading", name="Incident #99999")).to_be_visible()
    await expect(page.locator("#incident-notice")).to_have_text("Incident #99999 was not found.")
    await expect(page.locator("#incident-view").get_by_text("first incident, acknowledged")).to_have_count(0)
    await expect(page.locator("#incident-view").get_by_role("button", name=ACTIONS)).to_have_count(0)
    await expect(page.locator("#incident-timeline li")).to_have_count(0)


async def test_an_incident_opened_while_the_api_is_unreachable_loads_once_it_is_back(
    page: Page, stack: ConsoleStack, browser_log: BrowserLog
) -> None:
    browser_log.allow("net::ERR_FAILED")
    async with stack.client() as client:
        shown = await create(client, "the incident shown before the outage")
        wanted = await create(client, "the incident asked for during the outage")
    await signed_in(page, stack, f"#/incidents/{shown}")
    await expect(page.locator("#incident-message")).to_have_text("the incident shown before the outage")

    down = re.compile(rf"/incident/(stream|{wanted}(/timeline)?)$")
    await page.route(down, lambda route: route.abort())
    await page.reload()  # the live stream is cut; the incident shown still loads
    await expect(page.locator("#incident-message")).to_have_text("the incident shown before the outage")
    await page.goto(f"{stack.api.url}/ui/#/incidents/{wanted}")
    await expect(page.locator("#incident-notice")).to_contain_text(f"Incident #{wanted} could not be loaded")
    await expect(page.locator("#incident-view").get_by_text("the incident shown before the outage")).to_have_count(0)
    await expect(page.locator("#incident-view").get_by_role("button", name=ACTIONS)).to_have_count(0)

    await page.unroute(down)  # the API is back: the reconnect fetches the route again
    await expect(page.locator("#incident-message")).to_have_text(
        "the incident asked for during the outage", timeout=15000
    )
    await expect(page.locator("#incident-notice")).to_be_hidden()
    await expect(page.get_by_role("button", name="Acknowledge")).to_be_enabled()


# ---------- 2. older answers never overwrite newer ones ----------


async def test_an_older_list_answer_never_overwrites_the_filtered_one(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        acked = await create(client, "acknowledged before the filter changed")
        assert (await client.post(f"/incident/{acked}/acknowledge")).status_code == 200
        open_one = await create(client, "not acknowledged")
    await signed_in(page, stack)
    rows = page.locator("#incident-list li")
    await expect(page.locator(f'#incident-list li[data-id="{acked}"]')).to_be_visible()

    def unfiltered(request: Request) -> bool:
        return bool(LIST.search(request.url)) and "acknowledged=no" not in request.url

    async with Held(page, LIST, unfiltered) as held:
        await page.get_by_label("Acknowledged").select_option("yes")  # a load that the API answers late
        await held.arrived.wait()
        await page.get_by_label("Acknowledged").select_option("no")  # a newer load, answered at once
        await expect(page.locator(f'#incident-list li[data-id="{open_one}"]')).to_be_visible()
        await held.settle()
    assert "acknowledged=no" not in held.urls[0]
    await expect(page.locator(f'#incident-list li[data-id="{acked}"]')).to_have_count(0)
    for text in await rows.all_text_contents():
        assert "Ack'd" not in text


async def test_an_older_incident_answer_never_shows_under_another_heading(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        slow = await create(client, "answered late")
        fast = await create(client, "answered at once")
    await signed_in(page, stack)

    async with opened_with_its_read_held(page, stack, slow) as held:
        await page.goto(f"{stack.api.url}/ui/#/incidents/{fast}")
        await expect(page.locator("#incident-message")).to_have_text("answered at once")
        await held.settle()
    await expect(page.get_by_role("heading", name=f"Incident #{fast}")).to_be_visible()
    await expect(page.locator("#incident-message")).to_have_text("answered at once")


# ---------- a click is never lost ----------


async def test_acknowledge_clicked_while_the_incident_loads_is_not_lost(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        incident_id = await create(client, "clicked at once")
    await signed_in(page, stack)
    await page.evaluate("window.clicks = 0; document.addEventListener('click', () => window.clicks++, true)")

    async with opened_with_its_read_held(page, stack, incident_id) as held:
        click = asyncio.create_task(page.get_by_role("button", name="Acknowledge").click())

        # Either the click reached a button that was shown, or there is none to click until the incident loads.
        async def clicked_or_nothing_to_click() -> bool:
            return bool(
                await page.evaluate(
                    "() => window.clicks > 0 || document.getElementById('incident-actions')?.hidden"
                    " || document.getElementById('toggle-ack').disabled"
                )
            )

        await eventually(clicked_or_nothing_to_click, timeout=10, what="the click to land or wait")
        held.release.set()
        await click

    async def acknowledged() -> bool:
        async with stack.client() as client:
            return (await incident(client, incident_id))["acknowledged"] == "yes"

    await eventually(acknowledged, timeout=5, what="the click to acknowledge the incident")
    await expect(page.get_by_role("button", name="Unacknowledge")).to_be_visible()


async def test_a_shortcut_pressed_while_the_incident_loads_says_why_it_did_nothing(
    page: Page, stack: ConsoleStack
) -> None:
    async with stack.client() as client:
        incident_id = await create(client, "pressed at once")
    await signed_in(page, stack)

    async with opened_with_its_read_held(page, stack, incident_id) as held:
        await page.keyboard.press("a")
        await expect(page.locator("#incident-notice")).to_contain_text("still loading")
        await held.settle()
    await expect(page.locator("#incident-notice")).to_be_hidden()  # answered once it shows
    await page.keyboard.press("a")
    await expect(page.get_by_role("button", name="Unacknowledge")).to_be_visible()


# ---------- 3. outages are easy to see ----------


async def test_an_outage_shows_a_banner_retries_within_5_s_and_clears_its_errors(
    page: Page, stack: ConsoleStack, browser_log: BrowserLog
) -> None:
    browser_log.allow("net::ERR_FAILED")
    await signed_in(page, stack)
    attempts: list[float] = []
    down = True

    async def stream(route: Route) -> None:
        attempts.append(time.monotonic())
        if down:
            await route.abort()
        else:
            await route.continue_()

    async def listing(route: Route) -> None:
        await (route.abort() if down else route.continue_())

    await page.route(STREAM, stream)
    await page.route(LIST, listing)
    await page.reload()  # the page's new stream and list meet the outage
    banner = page.locator("#connection-banner")
    await expect(banner).to_contain_text(re.compile(r"Disconnected — data as of \d\d:\d\d UTC"), timeout=10000)
    await expect(page.locator("#list-error")).to_contain_text("could not be reached")

    async def enough_attempts() -> bool:
        return len(attempts) >= 5

    await eventually(enough_attempts, timeout=30, what="five reconnection attempts")
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= 5.75, f"reconnect attempts {gaps} s apart: the backoff must stay near 5 s"

    down = False
    async with stack.client() as client:
        created = await create(client, "created while the console was cut off")
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=7000)
    await expect(banner).to_be_hidden()
    await expect(page.locator("#list-error")).to_be_hidden()
    await expect(page.locator(f'#incident-list li[data-id="{created}"]')).to_be_visible(timeout=LIVE_MS)
    await page.unroute(STREAM, stream)
    await page.unroute(LIST, listing)


# ---------- 4 and 5. triage at a glance ----------


async def test_triage_the_newest_critical_unacknowledged_incident_leads_200(page: Page, stack: ConsoleStack) -> None:
    severities = ["critical", "error", "warning", "info", None]
    async with stack.client() as client:
        ids: list[tuple[int, str | None]] = []
        for n in range(200):
            severity = severities[n % 5]
            ids.append((await create(client, f"storm {n}", **({"severity": severity} if severity else {})), severity))
        critical = [i for i, s in ids if s == "critical"]
        # the newest critical is acknowledged, the one before it resolved: neither leads
        assert (await client.post(f"/incident/{critical[-1]}/acknowledge")).status_code == 200
        assert (await client.post(f"/incident/{critical[-2]}/resolve")).status_code == 200
        items = (await client.get("/incident/", params={"status": "unresolved", "limit": 200})).json()["items"]
        everything = items
    leader = max(i["id"] for i in everything if i["severity"] == "critical" and i["acknowledged"] == "no")
    assert leader == critical[-3]
    await page.set_viewport_size({"width": 1280, "height": 800})
    await signed_in(page, stack)
    first = page.locator("#incident-list li").first
    await expect(first).to_have_attribute("data-id", str(leader))
    await expect(page.get_by_label("Status")).to_have_value("unresolved")

    # dense: at least 15 rows on a 1280 x 800 screen
    on_screen = await page.locator("#incident-list li").evaluate_all(
        "rows => rows.filter(r => r.getBoundingClientRect().bottom <= innerHeight).length"
    )
    assert on_screen >= 15, f"{on_screen} rows fit a 1280×800 screen"
    colours = await page.evaluate(
        """() => Object.fromEntries(['critical', 'error'].map(s => [s,
            getComputedStyle(document.querySelector(`#incident-list li[data-severity="${s}"]`)).borderLeftColor]))"""
    )
    assert colours["critical"] != colours["error"]

    # filters live in the URL: a reload keeps them, a link shares them
    await page.get_by_label("Severity", exact=True).select_option("error")
    await page.get_by_label("Acknowledged").select_option("no")
    await expect(page).to_have_url(re.compile(r"#/\?.*severity=error"))
    await page.reload()
    await expect(page.get_by_label("Severity", exact=True)).to_have_value("error")
    await expect(page.get_by_label("Acknowledged")).to_have_value("no")
    for text in await page.locator("#incident-list li").all_text_contents():
        assert "Error" in text


async def test_rows_and_the_page_say_who_acknowledged_since_when_and_how_many_alerts(
    page: Page, stack: ConsoleStack
) -> None:
    async with stack.client() as client:
        event = {
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "triage-disk",
            "payload": {"summary": "disk 97% on db-3", "source": "https://grafana.example/d/disk", "severity": "error"},
        }
        for _ in range(3):
            assert (await client.post("/v2/enqueue", json=event)).status_code == 202
        found = (await client.get("/incident/", params={"dedup_key": "triage-disk"})).json()["items"]
        incident_id = int(found[0]["id"])
        acknowledge = {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "triage-disk"}
        assert (await client.post("/v2/enqueue", json=acknowledge)).status_code == 202
    await signed_in(page, stack, "#/?q=db-3")
    row = page.locator(f'#incident-list li[data-id="{incident_id}"]')
    await expect(row).to_contain_text(f"Ack'd by {INTEGRATION} · <1 min")  # credited to the integration
    await expect(row).to_contain_text("3 alerts")
    await expect(row).to_contain_text("open <1 min")
    await expect(row).to_contain_text(re.compile(r"acknowledged by grafana just now \(\d\d:\d\d UTC\)"))
    await row.get_by_role("link", name="disk 97% on db-3").click()
    await expect(page.locator("#incident-acknowledged-by")).to_contain_text(f"by {INTEGRATION}")
    await expect(page.locator("#incident-alerts")).to_contain_text("3")
    await expect(page.locator("#incident-duration")).to_have_text("open for <1 min")
    await expect(page.locator("#incident-updated")).to_contain_text(re.compile(r"acknowledged by grafana .*UTC"))
    source = page.locator("#incident-source").get_by_role("link", name="https://grafana.example/d/disk")
    await expect(source).to_have_attribute("href", "https://grafana.example/d/disk")


# ---------- 6. search ----------


async def test_search_and_label_filters_in_the_console(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        by_comment = await create(client, "latency on checkout", labels={"team": "payments"})
        response = await client.post(f"/incident/{by_comment}/comments", json={"comment": "suspect the zebracache"})
        assert response.status_code == 200
        other = await create(client, "latency on search", labels={"team": "search"})
    await signed_in(page, stack)
    rows = page.locator("#incident-list li")
    await page.keyboard.press("/")
    await expect(page.get_by_label("Search")).to_be_focused()
    await page.keyboard.type("zebracache")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", str(by_comment))
    await expect(page).to_have_url(re.compile(r"q=zebracache"))

    await page.get_by_label("Search").fill("latency")
    await page.get_by_label("Label", exact=True).fill("team=search")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", str(other))


# ---------- 7. long incidents stay workable ----------


async def test_a_long_incident_keeps_its_actions_and_comment_box_in_reach(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        incident_id = await create(client, "a long one\n" * 40, labels={f"label{n}": "value" for n in range(30)})
        for n in range(12):
            comments = [f"comment {n * 10 + k} " + "words " * 20 for k in range(10)]
            assert (await client.put(f"/incident/{incident_id}", json={"comments": comments})).status_code == 200
    await page.set_viewport_size({"width": 1280, "height": 800})
    await signed_in(page, stack, f"#/incidents/{incident_id}")
    await expect(page.locator("#incident-timeline li")).to_have_count(121)
    await expect(page.locator("#incident-timeline li").first).to_contain_text("comment 119")  # newest first
    assert await page.get_by_text("comment 57 ", exact=False).count() == 1  # shown once, not twice
    await page.locator("#incident-labels-section summary").click()  # labels fold away
    await page.locator("#message-details summary").click()  # and so does the message
    box = await page.get_by_label("Comment", exact=True).bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800, f"the comment box is {box} down"
    await page.mouse.wheel(0, 20000)
    await expect(page.locator("#incident-timeline li").last).to_be_in_viewport()
    actions = await page.get_by_role("button", name="Acknowledge").bounding_box()
    assert actions is not None and 0 <= actions["y"] <= 800, "the action bar stays on screen"


# ---------- 8. act with context ----------


async def test_a_note_with_resolve_acknowledge_from_the_list_and_bulk_actions_per_incident(
    page: Page, stack: ConsoleStack, browser_log: BrowserLog
) -> None:
    browser_log.allow("412 (Precondition Failed)")
    browser_log.allow("net::ERR_FAILED")
    async with stack.client() as client:
        noted = await create(client, "resolve me with a note")
        from_row = await create(client, "acknowledge me from the list")
        bulk = [await create(client, f"bulk {n}") for n in range(3)]
    await signed_in(page, stack, f"#/incidents/{noted}")
    await page.get_by_label("Note (optional)").fill("restarted the consumer")
    await page.get_by_role("button", name="Resolve").click()
    await expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    await expect(page.locator("#incident-timeline li").first).to_contain_text("restarted the consumer")
    async with stack.client() as client:
        assert (await incident(client, noted))["comments"] == ["restarted the consumer"]

    await page.goto(f"{stack.api.url}/ui/#/?q=acknowledge+list")
    await page.get_by_role("button", name=f"Acknowledge #{from_row}", exact=True).click()
    row = page.locator(f'#incident-list li[data-id="{from_row}"]')
    await expect(row).to_contain_text(f"Ack'd by {ACTOR}", timeout=LIVE_MS)

    await page.route(STREAM, lambda route: route.abort())  # the list stops following changes
    await page.goto(f"{stack.api.url}/ui/#/?q=bulk")
    await page.reload()
    await expect(page.locator(f'#incident-list li[data-id="{bulk[0]}"]')).to_be_visible()
    async with stack.client() as client:  # changed elsewhere: the list's version is stale for this one
        assert (await client.post(f"/incident/{bulk[1]}/comments", json={"comment": "elsewhere"})).status_code == 200
    for incident_id in bulk:
        await page.get_by_label(f"Select #{incident_id}", exact=True).check()
    await page.get_by_role("button", name="Acknowledge selected (3)").click()
    report = page.locator("#bulk-report")
    await expect(report).to_contain_text("2 of 3 acknowledged.")
    await expect(report).to_contain_text(f"#{bulk[0]} acknowledged")
    await expect(report).to_contain_text(f"#{bulk[1]} not saved: it changed since the list was loaded")
    async with stack.client() as client:
        states = [(await incident(client, i))["acknowledged"] for i in bulk]
    assert states == ["yes", "no", "yes"]


# ---------- 9. alert context ----------


async def test_alertmanager_links_a_url_source_and_a_long_dedup_key(page: Page, stack: ConsoleStack) -> None:
    notification = {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull", instance="db-9", cluster="eu-west-1-production"}',
        "status": "firing",
        "receiver": "incidents",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
        "commonAnnotations": {
            "summary": "disk full on db-9",
            "runbook_url": "https://runbooks.example/disk-full",
            "dashboard": "https://grafana.example/d/db",
        },
        "externalURL": "https://alertmanager.example",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "instance": "db-9"},
                "annotations": {},
                "startsAt": "2026-12-05T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://prometheus.example/graph?g0.expr=disk",
                "fingerprint": "abc123",
            }
        ],
    }
    async with stack.client() as client:
        response = await client.post("/integrations/alertmanager", json=notification)
        assert response.status_code == 200, response.text
        incident_id = int(response.json()["ID"])
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await signed_in(page, stack, f"#/incidents/{incident_id}")
    labels = page.locator("#incident-labels")
    for url in (
        "https://runbooks.example/disk-full",
        "https://grafana.example/d/db",
        "https://prometheus.example/graph?g0.expr=disk",
    ):
        await expect(labels.get_by_role("link", name=url)).to_have_attribute("href", url)
    await expect(page.locator("#incident-source").get_by_role("link")).to_have_attribute(
        "href", "https://alertmanager.example/"
    )
    key = str(notification["groupKey"])
    shown = page.locator("#incident-dedup-key code")
    await expect(shown).to_have_text(f"{key[:32]}…")
    await expect(shown).to_have_attribute("title", key)
    await page.get_by_role("button", name="Copy dedup key").click()
    await expect(page.get_by_role("button", name="Copy dedup key")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == key


# ---------- 10. the form and the keyboard ----------


async def test_the_form_takes_alert_fields_esc_closes_ctrl_enter_creates_and_shortcuts_work(
    page: Page, stack: ConsoleStack
) -> None:
    await signed_in(page, stack)
    await page.keyboard.press("?")
    await expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    await expect(page.get_by_role("dialog")).to_contain_text("j / k")
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()

    await page.get_by_role("button", name="New incident").click()
    await page.get_by_label("Message").fill("typed, then closed")
    await page.keyboard.press("Escape")
    await expect(page.get_by_label("Message")).to_be_hidden()
    await expect(page.get_by_role("button", name="New incident")).to_be_focused()

    await page.keyboard.press("n")
    await page.get_by_label("Message").fill("queue consumers stalled")
    await page.get_by_label("Severity (optional)").select_option("critical")
    await page.get_by_label("Source (optional)").fill("kafka-eu")
    await page.get_by_label("Labels (optional)").fill("team=data\nregion=eu-west-1")
    await page.get_by_label("Labels (optional)").press("Control+Enter")
    heading = page.get_by_role("heading", name=re.compile(r"^Incident #\d+$"))
    await expect(heading).to_be_focused()
    incident_id = int((await heading.text_content() or "").split("#")[1])
    async with stack.client() as client:
        created = await incident(client, incident_id)
    assert (created["severity"], created["source"], created["labels"]) == (
        "critical",
        "kafka-eu",
        {"team": "data", "region": "eu-west-1"},
    )
    await page.keyboard.press("a")  # acknowledge this incident
    await expect(page.get_by_role("button", name="Unacknowledge")).to_be_visible()

    async with stack.client() as client:
        for n in range(3):
            await create(client, f"keyboard row {n}")
    await page.goto(f"{stack.api.url}/ui/#/?q=keyboard")
    await expect(page.locator("#incident-list li")).to_have_count(3)
    await expect(page.locator("#incident-list")).not_to_have_attribute("aria-busy", "true")
    await page.locator("#list-title").focus()
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    second = page.locator("#incident-list li").nth(1)
    await expect(second.locator("a.title")).to_be_focused()
    await page.keyboard.press("k")
    await expect(page.locator("#incident-list li").first.locator("a.title")).to_be_focused()

    async def slowly(route: Route) -> None:
        await loading_seen.wait()
        await route.continue_()

    loading_seen = asyncio.Event()
    await page.route(LIST, slowly)
    await page.get_by_label("Acknowledged").select_option("yes")
    await expect(page.locator("#list-loading")).to_be_visible()  # a loading state while the list is fetched
    loading_seen.set()
    await expect(page.locator("#list-loading")).to_be_hidden()
    await page.unroute(LIST, slowly)
