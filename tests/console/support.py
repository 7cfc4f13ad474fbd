"""The console under test: the real API, event handler and nats-server, and Debian's chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, ConsoleMessage, Error, Page, Playwright

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.vendors import jira_env, slack_env, zendesk_env
from tests.support.database import migrate, sqlite_url
from tests.support.polling import eventually_sync
from tests.support.processes import NatsServer, Process
from tests.support.services import ApiProcess, module_process, service_env

TOKEN = "consoleT0kenForTests"
ACTOR = "oncall"
INTEGRATION = "grafana"
ROUTING_KEY = "consoleRoutingKeyForTests"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LIVE_SECONDS = 5.0
"""A change made elsewhere shows on an open page within this long."""


@dataclass
class ConsoleStack:
    workdir: Path
    nats: NatsServer
    database_url: str
    eventhandler: Process
    api: ApiProcess
    env: dict[str, str]

    def new_api(self) -> ApiProcess:
        """Another API process on the same database and NATS (a second replica)."""
        return ApiProcess(self.workdir, self.database_url, self.nats.url, self.env).start()

    def client(self, api: ApiProcess | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=(api or self.api).url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )


@contextmanager
def console_stack(workdir: Path) -> Iterator[ConsoleStack]:
    nats = NatsServer(workdir / "nats").start()
    started: list[Process | ApiProcess] = []
    try:
        url = sqlite_url(workdir)
        migrate(url)
        env = {"API_TOKENS": f"{ACTOR}:{TOKEN}", "INTEGRATION_KEYS": f"{INTEGRATION}:{ROUTING_KEY}"}
        eventhandler = module_process(
            "eventhandler", ["services.eventhandler"], workdir, service_env(NATS_URL=nats.url)
        )
        started.append(eventhandler.start())
        api = ApiProcess(workdir, url, nats.url, env).start()
        started.append(api)

        def eventhandler_answers() -> bool:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            return httpx.get(f"{api.url}/subscriptions", headers=headers, timeout=2).status_code == 200

        eventually_sync(eventhandler_answers, timeout=30, what="the API to reach the event handler")
        yield ConsoleStack(workdir, nats, url, eventhandler, api, env)
    finally:
        for process in reversed(started):
            process.stop()
        nats.stop()


async def launch(playwright: Playwright) -> Browser:
    """Debian's chromium, never a downloaded one."""
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@dataclass
class BrowserLog:
    """Every console error and uncaught exception of a page; a test ends with none but those it expects."""

    errors: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} at {message.location.get('url', '?')}")

    def _on_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error}")

    def allow(self, fragment: str) -> None:
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(fragment in e for fragment in self.allowed)]


async def sign_in(page: Page, base_url: str, token: str = TOKEN) -> None:
    await page.goto(f"{base_url}/ui/")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def incident(client: httpx.AsyncClient, incident_id: int | str) -> dict[str, Any]:
    response = await client.get(f"/incident/{incident_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def create(client: httpx.AsyncClient, message: str, **fields: object) -> int:
    """Creates an incident; `fields` are its optional alert fields (severity, source, labels, dedup_key)."""
    response = await client.post("/incident/", json={"message": message, **fields})
    assert response.status_code == 200, response.text
    return int(response.json()["ID"])


@contextmanager
def outside_systems(stack: ConsoleStack) -> Iterator[tuple[FakeJira, FakeSlack, FakeZendesk]]:
    """Fake Jira, Slack and Zendesk, and the three workers keeping one object per incident in them."""
    fakes = (FakeJira(), FakeSlack(), FakeZendesk())
    workers: list[Process] = []
    try:
        for fake in fakes:
            fake.start()
        jira, slack, zendesk = fakes
        for name, env in (("jira", jira_env(jira)), ("slack", slack_env(slack)), ("zendesk", zendesk_env(zendesk))):
            worker_env = service_env(NATS_URL=stack.nats.url, **env)
            workers.append(module_process(f"worker-{name}", ["services.workers", name], stack.workdir, worker_env))
            workers[-1].start()
        yield fakes
    finally:
        for worker in workers:
            worker.stop()
        for fake in fakes:
            fake.stop()
