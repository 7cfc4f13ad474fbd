"""Incidents from alerts show their severity, source and labels in Jira, Slack and Zendesk."""

from __future__ import annotations

from nats.js import JetStreamContext

from services.workers.jira.worker import JiraWorker
from services.workers.slack.worker import SlackWorker
from services.workers.zendesk.worker import ZendeskWorker
from tests.fakes.incidents import IncidentFeed, publish
from tests.fakes.jira import FakeJira, adf_text
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.integration.workers.helpers import StartWorker, settled
from tests.integration.workers.vendors import jira_env, slack_env, zendesk_env

ALERT = {
    "severity": "critical",
    "source": "prometheus-eu",
    "labels": {"service": "checkout", "team": "payments"},
    "dedup_key": "checkout-latency",
}


async def test_jira_issue_carries_a_severity_label_and_the_alert_in_its_description(
    js: JetStreamContext, fake_jira: FakeJira, start_worker: StartWorker
) -> None:
    await start_worker(JiraWorker, jira_env(fake_jira))
    feed = IncidentFeed()
    await publish(js, feed.create("Checkout slow", **ALERT))  # type: ignore[arg-type]
    await publish(js, feed.create("No alert"))
    await settled(js, "jira")
    issue = fake_jira.only(1)
    assert issue.labels == ["incident-1", "severity-critical"]
    text = adf_text(issue.description)
    assert "Severity: critical" in text
    assert "Source: prometheus-eu" in text
    assert "Labels: service=checkout, team=payments" in text
    assert "Dedup key: checkout-latency" in text
    assert fake_jira.only(2).labels == ["incident-2"]
    # A severity change reaches Jira without touching labels set there by people.
    fake_jira.only(1).labels.append("customer-facing")
    await publish(js, feed.set_alert(1, severity="warning"))
    await settled(js, "jira")
    issue = fake_jira.only(1)
    assert issue.labels == ["incident-1", "customer-facing", "severity-warning"]
    assert "Severity: warning" in adf_text(issue.description)
    assert "Labels:" not in adf_text(issue.description)
    assert [adf_text(c["body"]).splitlines()[0] for c in issue.comments] == []  # no note for field changes


async def test_slack_root_message_shows_severity_source_and_labels(
    js: JetStreamContext, fake_slack: FakeSlack, start_worker: StartWorker
) -> None:
    await start_worker(SlackWorker, slack_env(fake_slack))
    feed = IncidentFeed()
    await publish(js, feed.create("Checkout slow", **ALERT))  # type: ignore[arg-type]
    await publish(js, feed.acknowledge(1))
    await settled(js, "slack")
    blocks = fake_slack.only(1).blocks
    alert_line = blocks[1]["elements"][0]["text"]
    assert alert_line == "Severity: *critical* · Source: prometheus-eu · `service=checkout` `team=payments`"
    assert blocks[-1]["elements"][0]["text"] == "Status: *unresolved* · Acknowledged: *yes*"
    await publish(js, feed.set_alert(1, severity="info", labels={"team": "payments"}))
    await settled(js, "slack")
    alert_line = fake_slack.only(1).blocks[1]["elements"][0]["text"]
    assert alert_line == "Severity: *info* · Source: prometheus-eu · `team=payments`"


async def test_zendesk_ticket_gets_priority_and_severity_tag(
    js: JetStreamContext, fake_zendesk: FakeZendesk, start_worker: StartWorker
) -> None:
    await start_worker(ZendeskWorker, zendesk_env(fake_zendesk))
    feed = IncidentFeed()
    await publish(js, feed.create("Checkout slow", **ALERT))  # type: ignore[arg-type]
    await publish(js, feed.create("Disk filling", severity="info"))
    await settled(js, "zendesk")
    ticket = fake_zendesk.only(1)
    assert ticket.tags == ["incident-1", "severity_critical"]
    assert ticket.priority == "urgent"
    assert "Labels: service=checkout, team=payments" in ticket.comment_bodies()[0]
    assert fake_zendesk.only(2).priority == "low"
    await publish(js, feed.set_alert(1, severity="error"))
    await publish(js, feed.set_alert(2, severity=None))
    await settled(js, "zendesk")
    ticket = fake_zendesk.only(1)
    assert (ticket.priority, ticket.tags) == ("high", ["incident-1", "severity_error"])
    cleared = fake_zendesk.only(2)
    assert (cleared.priority, cleared.tags) == (None, ["incident-2"])
