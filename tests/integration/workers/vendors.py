"""How each outside system is configured and inspected in tests, and the worker process environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.workers.base import WorkerFactory
from services.workers.jira.worker import JiraWorker
from services.workers.slack.worker import SlackWorker
from services.workers.zendesk.worker import ZendeskWorker
from tests.fakes.jira import FakeJira
from tests.fakes.server import FakeServer
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.support.processes import free_port


def jira_env(fake: FakeJira, lag: float = 2.0) -> dict[str, str]:
    return {
        "JIRA_BASE_URL": fake.url,
        "JIRA_EMAIL": fake.email,
        "JIRA_API_TOKEN": fake.token,
        "JIRA_PROJECT_KEY": fake.project,
        "JIRA_SEARCH_LAG_SECONDS": str(lag),
    }


def slack_env(fake: FakeSlack) -> dict[str, str]:
    return {"SLACK_API_URL": fake.url, "SLACK_BOT_TOKEN": fake.token, "SLACK_CHANNEL": fake.channel}


def zendesk_env(fake: FakeZendesk) -> dict[str, str]:
    return {"ZENDESK_BASE_URL": fake.url, "ZENDESK_EMAIL": fake.email, "ZENDESK_API_TOKEN": fake.token}


@dataclass
class Vendor:
    """One outside system seen through the same questions, for tests that hold for all three."""

    name: str
    factory: WorkerFactory
    fake: Any
    env: dict[str, str]
    create: dict[str, str]
    """method= and path= of the create call, for fault injection."""

    def objects(self, incident_id: int) -> int:
        if self.name == "jira":
            return len(self.fake.with_label(f"incident-{incident_id}"))
        if self.name == "slack":
            return len(self.fake.roots_for(incident_id))
        return len(self.fake.for_incident(incident_id))

    def posts(self, incident_id: int) -> list[str]:
        """Texts of the comments (or thread replies) on the incident's one object."""
        if self.name == "jira":
            return list(self.fake.only(incident_id).comment_texts())
        if self.name == "slack":
            return self.fake.replies(self.fake.only(incident_id).ts)
        return self.fake.only(incident_id).comment_bodies()[1:]

    def creates(self) -> int:
        """Create calls received (Slack: root messages, not thread replies)."""
        if self.name == "slack":
            with self.fake.lock:
                posts = [r.json() for r in self.fake.requests if r.path == "/chat.postMessage"]
            return sum(1 for p in posts if "thread_ts" not in p)
        return int(self.fake.count(self.create["method"], self.create["path"]))


def make_vendor(name: str, fake: FakeServer, **extra_env: str) -> Vendor:
    if isinstance(fake, FakeJira):
        env = jira_env(fake, lag=float(extra_env.pop("JIRA_SEARCH_LAG_SECONDS", "0.5")))
        return Vendor(name, JiraWorker, fake, env | extra_env, {"method": "POST", "path": r"^/rest/api/3/issue$"})
    if isinstance(fake, FakeSlack):
        create = {"method": "POST", "path": r"^/chat\.postMessage$"}
        return Vendor(name, SlackWorker, fake, slack_env(fake) | extra_env, create)
    assert isinstance(fake, FakeZendesk)
    create = {"method": "POST", "path": r"^/api/v2/tickets\.json$"}
    return Vendor(name, ZendeskWorker, fake, zendesk_env(fake) | extra_env, create)


def process_env(nats_url: str, vendor_env: Mapping[str, str], **overrides: str) -> dict[str, str]:
    """The environment of `python -m services.workers NAME`: fast test timings, JSON logs."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("JIRA_", "SLACK_", "ZENDESK_", "WORKER_"))}
    return (
        inherited
        | {
            "NATS_URL": nats_url,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
            "WORKER_FETCH_TIMEOUT_SECONDS": "0.5",
            "WORKER_RETRY_BASE_SECONDS": "0.1",
            "WORKER_RETRY_MAX_SECONDS": "1",
            "WORKER_LEASE_SECONDS": "1",
            "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
            "HEALTH_HOST": "127.0.0.1",
            "HEALTH_PORT": str(free_port()),
        }
        | dict(vendor_env)
        | overrides
    )
