"""Without credentials a worker sends nothing: it logs each request it would send (at info its method and URL,
at debug the exact body too), minus auth."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.workers.base import WorkerFactory
from services.workers.httpclient import Response
from services.workers.jira import api as jira_api
from services.workers.jira.settings import JiraSettings
from services.workers.jira.worker import JiraWorker
from services.workers.lease import LeaseKeeper
from services.workers.slack.worker import SlackWorker
from services.workers.store import MemoryRecordStore
from services.workers.zendesk.worker import ZendeskWorker
from tests.fakes.incidents import IncidentFeed
from tests.fakes.sender import HandlerSender, Sent


def no_network(sent: Sent) -> Response:
    raise AssertionError(f"a dry run sent {sent.method} {sent.url}")


async def run_dry(factory: WorkerFactory, env: dict[str, str]) -> list[MutableMapping[str, Any]]:
    worker = factory.from_env(env, HandlerSender(no_network))
    assert worker.dry_run
    feed = IncidentFeed()
    keeper = LeaseKeeper(MemoryRecordStore(), "me", ttl=30)
    with capture_logs() as logs:
        for event in (feed.create("printer on fire"), feed.comment(1, "extinguisher found")):
            record = await keeper.acquire(1, event.incidentversion, wait=0)
            assert record is not None
            await keeper.finish(await worker.sync(event, record, keeper), event.incidentversion)
    sent = [entry for entry in logs if entry["event"] == "dry run: request not sent"]
    bodies = [entry for entry in logs if entry["event"] == "dry run: request body"]
    assert all(entry["log_level"] == "info" and "json" not in entry for entry in sent)
    assert all(entry["log_level"] == "debug" for entry in bodies)
    assert [(e["method"], e["url"]) for e in sent] == [(e["method"], e["url"]) for e in bodies]
    return bodies


async def test_jira_dry_run_logs_create_and_comment() -> None:
    logged = await run_dry(JiraWorker, {"JIRA_BASE_URL": "https://acme.atlassian.net", "JIRA_PROJECT_KEY": "OPS"})
    calls = [(e["method"], e["url"]) for e in logged]
    # No search first: no create was ever attempted for this incident.
    assert calls[0] == ("POST", "https://acme.atlassian.net/rest/api/3/issue")
    assert ("POST", "https://acme.atlassian.net/rest/api/3/issue/OPS-0/comment") in calls
    assert not any("search" in url for _, url in calls)
    feed = IncidentFeed()
    expected = jira_api.create_issue(JiraSettings(project_key="OPS"), feed.create("printer on fire").data.incident)
    assert logged[0]["json"] == expected.json
    assert all("authorization" not in str(e).lower() for e in logged)


@pytest.mark.parametrize(
    ("factory", "env", "create_url"),
    [
        (SlackWorker, {}, "https://slack.com/api/chat.postMessage"),
        (ZendeskWorker, {}, "https://your-subdomain.zendesk.com/api/v2/tickets.json"),
    ],
)
async def test_slack_and_zendesk_dry_runs_log_their_create(
    factory: WorkerFactory, env: dict[str, str], create_url: str
) -> None:
    logged = await run_dry(factory, env)
    creates = [e for e in logged if e["method"] == "POST" and e["url"] == create_url]
    assert creates, logged
    assert "printer on fire" in str(creates[0]["json"])
    assert any("extinguisher found" in str(e["json"]) for e in logged)
