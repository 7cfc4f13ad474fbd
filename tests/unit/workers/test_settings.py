"""Settings come from the contract's env names, fail loudly when malformed, and hide secrets."""

from __future__ import annotations

import pytest

from services.workers.jira.settings import JiraSettings
from services.workers.settings import RunnerSettings, ServiceSettings
from services.workers.slack.settings import SlackSettings
from services.workers.zendesk.settings import ZendeskSettings
from shared.config import ConfigError


def test_jira_runs_dry_without_credentials_and_live_with_them() -> None:
    assert JiraSettings.from_env({}).dry_run
    live = JiraSettings.from_env(
        {
            "JIRA_BASE_URL": "https://acme.atlassian.net",
            "JIRA_EMAIL": "bot@acme.io",
            "JIRA_API_TOKEN": "t0k",
            "JIRA_PROJECT_KEY": "OPS",
            "JIRA_DONE_TRANSITION": "Close",
            "JIRA_SEARCH_LAG_SECONDS": "5",
            "WORKER_CREATE_GRACE_SECONDS": "7",
        }
    )
    assert not live.dry_run
    assert (live.project_key, live.done_transition, live.reopen_transition) == ("OPS", "Close", "To Do")
    assert (live.issue_type, live.search_lag, live.create_grace) == ("Task", 5.0, 7.0)
    assert "t0k" not in repr(live)


@pytest.mark.parametrize(
    "env",
    [
        {"JIRA_EMAIL": "bot@acme.io"},
        {"JIRA_EMAIL": "bot@acme.io", "JIRA_API_TOKEN": "t"},
        {"JIRA_BASE_URL": "acme.atlassian.net"},
        {"JIRA_SEARCH_LAG_SECONDS": "soon"},
    ],
)
def test_jira_rejects_incomplete_or_malformed_settings(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        JiraSettings.from_env(env)


def test_slack_needs_a_channel_id_with_a_token() -> None:
    assert SlackSettings.from_env({}).dry_run
    assert SlackSettings.from_env({"SLACK_BOT_TOKEN": "x", "SLACK_CHANNEL": "C1"}).api_url == "https://slack.com/api"
    with pytest.raises(ConfigError):
        SlackSettings.from_env({"SLACK_BOT_TOKEN": "x"})
    with pytest.raises(ConfigError, match="channel id"):
        SlackSettings.from_env({"SLACK_BOT_TOKEN": "x", "SLACK_CHANNEL": "#incidents"})


def test_zendesk_needs_its_base_url_with_credentials() -> None:
    assert ZendeskSettings.from_env({"ZENDESK_BASE_URL": "https://acme.zendesk.com"}).dry_run
    with pytest.raises(ConfigError):
        ZendeskSettings.from_env({"ZENDESK_EMAIL": "a@b.c", "ZENDESK_API_TOKEN": "t"})


def test_runner_and_service_settings() -> None:
    assert RunnerSettings.from_env({}) == RunnerSettings()
    settings = ServiceSettings.from_env(
        {
            "WORKER_CONCURRENCY": "4",
            "HEALTH_PORT": "9100",
            "LOG_FORMAT": "json",
            "NATS_URL": "nats://n:4222",
        }
    )
    assert settings.runner.concurrency == 4 and settings.health_port == 9100 and settings.log_json is True
    assert settings.nats.servers == ["nats://n:4222"]
    assert ServiceSettings.from_env({}).health_port is None
    for bad in ({"LOG_FORMAT": "xml"}, {"LOG_LEVEL": "LOUD"}, {"HEALTH_PORT": "99999"}, {"WORKER_FETCH_BATCH": "0"}):
        with pytest.raises(ConfigError):
            ServiceSettings.from_env(bad)


def test_retry_budget_and_sync_deadline() -> None:
    defaults = RunnerSettings.from_env({})
    assert (defaults.retry_budget, defaults.sync_timeout) == (172800.0, 120.0)
    settings = RunnerSettings.from_env({"WORKER_RETRY_BUDGET_SECONDS": "3600", "WORKER_SYNC_TIMEOUT_SECONDS": "15"})
    assert (settings.retry_budget, settings.sync_timeout) == (3600.0, 15.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER_RETRY_BUDGET_SECONDS": "two days"}, "WORKER_RETRY_BUDGET_SECONDS must be a number"),
        ({"WORKER_RETRY_BUDGET_SECONDS": "0"}, "WORKER_RETRY_BUDGET_SECONDS must be >= 1.0"),
        ({"WORKER_RETRY_BUDGET_SECONDS": "60"}, r"WORKER_RETRY_BUDGET_SECONDS \(60\) must be >= WORKER_RETRY_MAX"),
        ({"WORKER_RETRY_BASE_SECONDS": "10", "WORKER_RETRY_MAX_SECONDS": "5"}, "WORKER_RETRY_MAX_SECONDS"),
        ({"WORKER_SYNC_TIMEOUT_SECONDS": "0.1"}, "WORKER_SYNC_TIMEOUT_SECONDS must be >= 1.0"),
        ({"WORKER_SYNC_TIMEOUT_SECONDS": "-"}, "WORKER_SYNC_TIMEOUT_SECONDS must be a number"),
    ],
)
def test_bad_retry_budget_or_sync_deadline_stops_the_worker(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunnerSettings.from_env(env)
