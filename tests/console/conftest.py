"""Fixtures of the console's browser tests: one stack per module, a fresh browser page per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Page, async_playwright

from tests.console.support import BrowserLog, ConsoleStack, console_stack, launch


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    with console_stack(tmp_path_factory.mktemp("console")) as started:
        yield started


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
async def page(browser_log: BrowserLog) -> AsyncIterator[Page]:
    """A page in a fresh browser; fails the test on any browser console error it did not allow."""
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            context = await browser.new_context(viewport={"width": 1100, "height": 900})
            page = await context.new_page()
            browser_log.attach(page)
            yield page
            await context.close()
        finally:
            await browser.close()
    unexpected = browser_log.unexpected()
    assert not unexpected, f"browser console errors: {unexpected}"
