"""The web console in a real headless Chromium against the real API, event handler and nats-server."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.console.support import (
    ACTOR,
    LIVE_SECONDS,
    TOKEN,
    BrowserLog,
    ConsoleStack,
    create,
    incident,
    outside_systems,
    sign_in,
)
from tests.support.polling import eventually
from tests.support.services import ApiProcess

pytestmark = pytest.mark.slow  # end to end: real processes and a real browser

LIVE_MS = LIVE_SECONDS * 1000


async def signed_in(page: Page, stack: ConsoleStack) -> None:
    await sign_in(page, stack.api.url)
    await expect(page.get_by_role("heading", name="Incidents", level=1)).to_be_visible()
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15000)


async def test_sign_in_refuses_a_wrong_token_then_accepts_the_right_one(
    page: Page, stack: ConsoleStack, browser_log: BrowserLog
) -> None:
    browser_log.allow("401 (Unauthorized)")  # the browser reports the refused check itself
    await sign_in(page, stack.api.url, token="not-the-token")
    await expect(page.get_by_role("alert")).to_contain_text("That API token was not accepted")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0

    await page.get_by_label("API token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Incidents", level=1)).to_be_visible()
    await expect(page.get_by_role("button", name="New incident")).to_be_visible()
    await expect(page.get_by_label("API token")).to_be_hidden()
    assert await page.evaluate("Object.values(sessionStorage)") == [TOKEN]
    assert await page.evaluate("localStorage.length") == 0
    assert TOKEN not in page.url
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15000)

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_an_incident_created_through_the_api_appears_live(page: Page, stack: ConsoleStack) -> None:
    await signed_in(page, stack)
    async with stack.client() as client:
        incident_id = await create(client, "disk full on db-7 (created through the API)")
    row = page.locator(f'#incident-list li[data-id="{incident_id}"]')
    await expect(row).to_be_visible(timeout=LIVE_MS)
    await expect(row.get_by_role("link")).to_have_text("disk full on db-7 (created through the API)")
    await expect(row).to_contain_text("Unresolved")
    await expect(row).to_contain_text("Not acknowledged")
    first = page.locator("#incident-list li").first
    await expect(first).to_have_attribute("data-id", str(incident_id))  # newest first

    async with stack.client() as client:
        assert (await client.post(f"/incident/{incident_id}/acknowledge")).status_code == 200
    await expect(row).to_contain_text(f"Ack'd by {ACTOR}", timeout=LIVE_MS)


async def test_open_acknowledge_comment_resolve_and_reopen(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        incident_id = await create(client, "checkout latency above 2s")
    await signed_in(page, stack)
    await page.get_by_role("link", name="checkout latency above 2s").click()
    await expect(page.get_by_role("heading", name=f"Incident #{incident_id}")).to_be_focused()
    await expect(page.locator("#incident-message")).to_have_text("checkout latency above 2s")
    await expect(page.get_by_role("button", name="New incident")).to_be_hidden()

    async def state() -> dict[str, object]:
        async with stack.client() as client:
            return await incident(client, incident_id)

    async def becomes(field: str, value: object) -> None:
        async def check() -> bool:
            return (await state())[field] == value

        await eventually(check, timeout=10, what=f"{field} to be {value!r} through the API")

    await page.get_by_role("button", name="Acknowledge").click()
    await expect(page.get_by_role("button", name="Unacknowledge")).to_be_focused()
    await becomes("acknowledged", "yes")
    await expect(page.locator("#incident-acknowledged")).to_have_text("Yes")

    await page.get_by_label("Comment").fill("rolled back the deploy")
    await page.get_by_role("button", name="Add comment").click()
    await expect(page.locator("#incident-timeline")).to_contain_text("rolled back the deploy")
    await expect(page.get_by_label("Comment")).to_be_focused()
    await expect(page.get_by_label("Comment")).to_have_value("")
    await becomes("comments", ["rolled back the deploy"])

    await page.get_by_role("button", name="Resolve").click()
    await expect(page.get_by_role("button", name="Reopen")).to_be_focused()
    await becomes("status", "resolved")

    await page.get_by_role("button", name="Reopen").click()
    await expect(page.get_by_role("button", name="Resolve")).to_be_focused()
    await becomes("status", "unresolved")

    await page.get_by_role("button", name="Unacknowledge").click()
    await expect(page.get_by_role("button", name="Acknowledge")).to_be_visible()
    await becomes("acknowledged", "no")

    timeline = page.locator("#incident-timeline li")  # newest first
    await expect(timeline).to_have_count(6, timeout=LIVE_MS)
    for index, what in enumerate(("unacknowledged", "reopened", "resolved", "commented", "acknowledged", "created")):
        await expect(timeline.nth(index)).to_contain_text(f"{ACTOR} {what}")
    await expect(timeline.nth(3)).to_contain_text("rolled back the deploy")


async def test_a_comment_added_elsewhere_appears_on_the_open_page(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        incident_id = await create(client, "queue depth growing")
    await signed_in(page, stack)
    await page.goto(f"{stack.api.url}/ui/#/incidents/{incident_id}")
    await expect(page.locator("#incident-message")).to_have_text("queue depth growing")
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15000)
    async with stack.client() as client:
        response = await client.post(f"/incident/{incident_id}/comments", json={"comment": "scaling consumers now"})
        assert response.status_code == 200
    await expect(page.locator("#incident-timeline")).to_contain_text("scaling consumers now", timeout=LIVE_MS)
    await expect(page.locator("#incident-timeline")).to_contain_text("commented")


async def test_create_from_the_form(page: Page, stack: ConsoleStack) -> None:
    await signed_in(page, stack)
    new = page.get_by_role("button", name="New incident")
    await expect(page.get_by_label("Message")).to_be_hidden()
    await expect(new).to_have_attribute("aria-expanded", "false")
    await new.click()
    await expect(new).to_have_attribute("aria-expanded", "true")
    await expect(page.get_by_label("Message")).to_be_focused()
    await page.get_by_label("Message").fill("payments API returns 502")
    await page.get_by_role("button", name="Create").click()
    heading = page.get_by_role("heading", name=re.compile(r"^Incident #\d+$"))
    await expect(heading).to_be_focused()
    incident_id = int((await heading.text_content() or "").split("#")[1])
    async with stack.client() as client:
        created = await incident(client, incident_id)
    assert created["message"] == "payments API returns 502"
    assert created["status"] == "unresolved"
    await page.get_by_role("link", name="All incidents").click()
    await expect(page.get_by_role("link", name="payments API returns 502")).to_be_visible()


async def test_a_script_message_renders_as_text(page: Page, stack: ConsoleStack) -> None:
    hostile = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"><b>bold</b>'
    comment = '<img src=y onerror="window.pwned = 3">'
    async with stack.client() as client:
        incident_id = await create(client, hostile)
        assert (await client.post(f"/incident/{incident_id}/comments", json={"comment": comment})).status_code == 200
    await signed_in(page, stack)
    row = page.locator(f'#incident-list li[data-id="{incident_id}"]')
    await expect(row.get_by_role("link")).to_have_text(hostile)
    await row.get_by_role("link").click()
    await expect(page.locator("#incident-message")).to_have_text(hostile)
    await expect(page.locator("#incident-timeline .said")).to_have_text(comment)
    assert await page.locator("main img, main script, main b").count() == 0
    assert await page.evaluate("window.pwned") is None


async def test_a_conflicting_change_is_shown_not_lost(page: Page, stack: ConsoleStack, browser_log: BrowserLog) -> None:
    """With the live stream cut, a change made elsewhere meets the page's If-Match: the page says what changed."""
    browser_log.allow("412 (Precondition Failed)")
    browser_log.allow("net::ERR_FAILED")
    async with stack.client() as client:
        incident_id = await create(client, "cache hit rate dropped")
    await page.route("**/incident/stream", lambda route: route.abort())
    await sign_in(page, stack.api.url)
    await page.goto(f"{stack.api.url}/ui/#/incidents/{incident_id}")
    await expect(page.locator("#incident-message")).to_have_text("cache hit rate dropped")
    async with stack.client() as client:
        assert (await client.post(f"/incident/{incident_id}/resolve")).status_code == 200
    await page.get_by_role("button", name="Acknowledge").click()
    notice = page.locator("#incident-notice")
    await expect(notice).to_contain_text("Not saved")
    await expect(notice).to_contain_text("status is now resolved")
    await expect(page.locator("#incident-status")).to_have_text("Resolved")
    await expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    async with stack.client() as client:
        assert (await incident(client, incident_id))["acknowledged"] == "no"


async def test_a_dropped_stream_reconnects_and_catches_up(
    page: Page, stack: ConsoleStack, browser_log: BrowserLog
) -> None:
    browser_log.allow("net::ERR_")  # the stream and its retries fail while the API is down
    served = stack.new_api()
    other = stack.new_api()
    try:
        await sign_in(page, served.url)
        await expect(page.locator("#live-state")).to_have_text("Live", timeout=15000)
        served.kill()
        await expect(page.locator("#live-state")).to_have_text(re.compile("Reconnecting|Connecting"))
        async with stack.client(other) as client:
            missed = await create(client, "created while the console was cut off")
        await page.evaluate("window.reloads = 0; addEventListener('beforeunload', () => window.reloads++)")
        served.start()
        await expect(page.locator("#live-state")).to_have_text("Live", timeout=30000)
        await expect(page.locator(f'#incident-list li[data-id="{missed}"]')).to_be_visible(timeout=LIVE_MS)
        assert await page.evaluate("window.reloads") == 0
    finally:
        served.stop()
        other.stop()


async def test_the_incident_page_links_to_the_jira_issue_slack_message_and_zendesk_ticket(
    page: Page, stack: ConsoleStack
) -> None:
    with outside_systems(stack) as (jira, _, zendesk):
        async with stack.client() as client:
            incident_id = await create(client, "search is down")

            async def linked() -> list[dict[str, str]]:
                links = (await incident(client, incident_id)).get("links", [])
                return links if {link["system"] for link in links} == {"jira", "slack", "zendesk"} else []

            links = {link["system"]: link for link in await eventually(linked, timeout=60, what="all three links")}
        await signed_in(page, stack)
        await page.goto(f"{stack.api.url}/ui/#/incidents/{incident_id}")
        issue = jira.only(incident_id)
        jira_link = page.get_by_role("link", name=f"Jira issue: {issue.key}")
        await expect(jira_link).to_have_attribute("href", f"{jira.url}/browse/{issue.key}")
        ticket = zendesk.only(incident_id)
        zendesk_link = page.get_by_role("link", name=f"Zendesk ticket: {ticket.id}")
        await expect(zendesk_link).to_have_attribute("href", f"{zendesk.url}/agent/tickets/{ticket.id}")
        slack_link = page.get_by_role("link", name=re.compile(r"^Slack message: "))
        await expect(slack_link).to_have_attribute("href", links["slack"]["url"])


async def test_filters_and_paging_over_the_cursor(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        ids = [await create(client, f"paging {n}") for n in range(60)]
        resolved = ids[-1]
        assert (await client.post(f"/incident/{resolved}/resolve")).status_code == 200
        acknowledged = ids[-2]
        assert (await client.post(f"/incident/{acknowledged}/acknowledge")).status_code == 200
        total = len((await client.get("/incident/", params={"limit": 200})).json()["items"])
    await signed_in(page, stack)
    await page.get_by_label("Status").select_option("any")
    await page.get_by_label("Order").select_option("newest")
    rows = page.locator("#incident-list li")
    await expect(rows).to_have_count(50)
    more = page.get_by_role("button", name="Load more")
    await more.click()
    await expect(rows).to_have_count(min(total, 100))
    await expect(rows.nth(50).get_by_role("link")).to_be_focused()
    listed = [int(i) for i in await rows.evaluate_all("rows => rows.map(r => r.dataset.id)")]
    assert listed == sorted(listed, reverse=True) and len(set(listed)) == len(listed)

    await page.get_by_label("Status").select_option("resolved")
    await expect(page.locator(f'#incident-list li[data-id="{resolved}"]')).to_be_visible()
    await expect(page.locator(f'#incident-list li[data-id="{acknowledged}"]')).to_have_count(0)
    for text in await rows.all_text_contents():
        assert "Resolved" in text and "Unresolved" not in text

    await page.get_by_label("Status").select_option("any")
    await page.get_by_label("Acknowledged").select_option("yes")
    await expect(page.locator(f'#incident-list li[data-id="{acknowledged}"]')).to_be_visible()
    await expect(page.locator(f'#incident-list li[data-id="{resolved}"]')).to_have_count(0)
    for text in await rows.all_text_contents():
        assert "Not acknowledged" not in text and "Ack'd by" in text

    async with stack.client() as client:  # a live change that no longer matches the filter leaves the list
        assert (await client.post(f"/incident/{acknowledged}/unacknowledge")).status_code == 200
    await expect(page.locator(f'#incident-list li[data-id="{acknowledged}"]')).to_have_count(0, timeout=LIVE_MS)


async def test_without_api_tokens_the_console_opens_straight_to_the_list(page: Page, stack: ConsoleStack) -> None:
    open_api = ApiProcess(stack.workdir, stack.database_url, stack.nats.url)  # no API_TOKENS
    open_api.start()
    try:
        await page.goto(f"{open_api.url}/ui/")
        await expect(page.get_by_role("heading", name="Incidents", level=1)).to_be_visible()
        await expect(page.locator("#live-state")).to_have_text("Live", timeout=15000)
        await expect(page.get_by_label("API token")).to_be_hidden()
        await expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        async with httpx.AsyncClient(base_url=open_api.url) as client:
            incident_id = await create(client, "no tokens configured")
        await expect(page.locator(f'#incident-list li[data-id="{incident_id}"]')).to_be_visible(timeout=LIVE_MS)
        assert await page.evaluate("sessionStorage.length") == 0
    finally:
        await page.close()  # the stream ends before the API stops
        open_api.stop()


NAMELESS_CONTROLS = """() => [...document.querySelectorAll('input, textarea, select, button')]
    .filter(e => !e.closest('[hidden]'))
    .filter(e => e.tagName === 'BUTTON' ? !e.textContent.trim() : e.labels.length === 0)
    .map(e => e.id || e.outerHTML)"""


async def test_named_controls_keyboard_use_and_a_phone_sized_screen(page: Page, stack: ConsoleStack) -> None:
    async with stack.client() as client:
        incident_id = await create(client, "a rather long message " * 12)
    await page.set_viewport_size({"width": 360, "height": 740})
    await page.goto(f"{stack.api.url}/ui/")
    assert await page.evaluate(NAMELESS_CONTROLS) == []
    await page.get_by_label("API token").focus()
    await page.keyboard.type(TOKEN)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Incidents", level=1)).to_be_focused()
    assert await page.evaluate(NAMELESS_CONTROLS) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360, "no sideways scrolling"

    await page.get_by_role("button", name="New incident").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Message")).to_be_focused()
    await page.keyboard.type("typed without a mouse")
    for field in ("Severity (optional)", "Source (optional)", "Labels (optional)"):
        await page.keyboard.press("Tab")
        await expect(page.get_by_label(field)).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Create")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=re.compile(r"^Incident #\d+$"))).to_be_focused()
    await expect(page.locator("#incident-message")).to_have_text("typed without a mouse")
    assert await page.evaluate(NAMELESS_CONTROLS) == []

    await page.goto(f"{stack.api.url}/ui/#/incidents/{incident_id}")
    await expect(page.locator("#incident-message")).to_contain_text("a rather long message")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360, "no sideways scrolling"
    await page.get_by_role("button", name="Acknowledge").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Unacknowledge")).to_be_focused()
    await expect(page.locator("#announce")).to_have_text("Acknowledged.")


SEEN_TEXT = "b => [...b.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join('')"


async def test_severity_source_labels_and_dedup_key_show_filter_and_stay_current(
    page: Page, stack: ConsoleStack
) -> None:
    hostile = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    labels = {"service": "checkout", "team": hostile}
    async with stack.client() as client:
        # more critical incidents than one page holds: the filter pages over the cursor
        paged = [await create(client, f"critical {n}", severity="critical") for n in range(51)]
        warning = await create(client, "queue depth rising", severity="warning")
        plain = await create(client, "no alert fields")
        incident_id = await create(
            client,
            "Checkout 5xx above 2%",
            severity="critical",
            source="alertmanager",
            labels=labels,
            dedup_key="checkout-5xx",
        )
    await signed_in(page, stack)
    await page.get_by_label("Order").select_option("newest")
    rows = page.locator("#incident-list li")
    row = page.locator(f'#incident-list li[data-id="{incident_id}"]')
    badge = row.locator(".badge.severity")
    await expect(badge).to_have_text("Severity: Critical")
    await expect(badge.locator(".visually-hidden")).to_have_text("Severity: ")  # heard, not seen
    assert await badge.evaluate(SEEN_TEXT) == "Critical"
    await expect(page.locator(f'#incident-list li[data-id="{warning}"] .badge.severity')).to_have_text(
        "Severity: Warning"
    )
    await expect(page.locator(f'#incident-list li[data-id="{plain}"] .badge.severity')).to_have_count(0)

    await page.get_by_label("Severity", exact=True).select_option("critical")
    await expect(page.locator(f'#incident-list li[data-id="{warning}"]')).to_have_count(0)
    await expect(page.locator(f'#incident-list li[data-id="{plain}"]')).to_have_count(0)
    await expect(rows).to_have_count(50)
    await page.get_by_role("button", name="Load more").click()
    await expect(rows).to_have_count(len(paged) + 1)
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    listed = {int(i) for i in await rows.evaluate_all("rows => rows.map(r => r.dataset.id)")}
    assert listed == {*paged, incident_id}
    for text in await rows.all_text_contents():
        assert "Severity: Critical" in text

    async with stack.client() as client:  # a live change of severity takes it out of the filtered list
        response = await client.put(f"/incident/{paged[-1]}", json={"severity": "info"})
        assert response.status_code == 200, response.text
    await expect(page.locator(f'#incident-list li[data-id="{paged[-1]}"]')).to_have_count(0, timeout=LIVE_MS)
    await page.get_by_label("Severity", exact=True).select_option("")
    await expect(page.locator(f'#incident-list li[data-id="{paged[-1]}"] .badge.severity')).to_have_text(
        "Severity: Info"
    )

    await row.get_by_role("link").click()
    await expect(page.locator("#incident-severity")).to_have_text("Critical")
    await expect(page.locator("#incident-source")).to_have_text("alertmanager")
    await expect(page.locator("#incident-dedup-key code")).to_have_text("checkout-5xx")
    shown = page.locator("#incident-labels > div")
    await expect(shown).to_have_count(2)
    await expect(shown.nth(0).locator("dt")).to_have_text("service")
    await expect(shown.nth(0).locator("dd")).to_have_text("checkout")
    await expect(shown.nth(1).locator("dt")).to_have_text("team")
    await expect(shown.nth(1).locator("dd")).to_have_text(hostile)
    assert await page.locator("main img, main script").count() == 0
    assert await page.evaluate("window.pwned") is None

    async with stack.client() as client:  # changed elsewhere: the open page follows the event
        changed = {"severity": "warning", "source": None, "labels": {"service": "payments"}, "dedup_key": None}
        response = await client.put(f"/incident/{incident_id}", json=changed)
        assert response.status_code == 200, response.text
    await expect(page.locator("#incident-severity")).to_have_text("Warning", timeout=LIVE_MS)
    await expect(page.locator("#incident-source")).to_be_hidden()
    await expect(page.locator("#incident-dedup-key")).to_be_hidden()
    await expect(shown).to_have_count(1)
    await expect(shown.locator("dd")).to_have_text("payments")

    async with stack.client() as client:
        response = await client.put(f"/incident/{plain}", json={"message": "still no alert fields"})
        assert response.status_code == 200, response.text
    await page.goto(f"{stack.api.url}/ui/#/incidents/{plain}")
    await expect(page.locator("#incident-message")).to_have_text("still no alert fields")
    for hidden in ("#incident-severity", "#incident-source", "#incident-dedup-key", "#incident-labels"):
        await expect(page.locator(hidden)).to_be_hidden()
