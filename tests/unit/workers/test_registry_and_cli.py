"""Workers are found by entry point name; the CLI lists them and refuses unknown ones."""

from __future__ import annotations

import pytest

from services.workers.__main__ import main
from services.workers.jira.worker import JiraWorker
from services.workers.registry import UnknownWorkerError, known_workers, load_worker
from services.workers.slack.worker import SlackWorker
from services.workers.zendesk.worker import ZendeskWorker


def test_the_three_workers_are_registered() -> None:
    assert {"jira", "slack", "zendesk"} <= set(known_workers())
    assert load_worker("jira") is JiraWorker
    assert load_worker("slack") is SlackWorker
    assert load_worker("zendesk") is ZendeskWorker


def test_an_unknown_name_lists_the_known_ones() -> None:
    known = r"unknown worker 'pagerduty'; known workers: .*jira, slack, webhooks, zendesk"
    with pytest.raises(UnknownWorkerError, match=known):
        load_worker("pagerduty")


def test_cli_lists_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    assert capsys.readouterr().out.split() == known_workers()


def test_cli_rejects_an_unknown_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pagerduty"]) == 2
    assert "known workers: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WORKER_CONCURRENCY", "many", "WORKER_CONCURRENCY must be an integer"),
        ("WORKER_RETRY_BUDGET_SECONDS", "48h", "WORKER_RETRY_BUDGET_SECONDS must be a number"),
        ("WORKER_RETRY_BUDGET_SECONDS", "10", "WORKER_RETRY_BUDGET_SECONDS (10) must be >= WORKER_RETRY_MAX_SECONDS"),
        ("WORKER_SYNC_TIMEOUT_SECONDS", "0", "WORKER_SYNC_TIMEOUT_SECONDS must be >= 1.0"),
        ("HTTPS_PROXY", "http://proxy.internal:3128", "HTTPS_PROXY is set, but the workers use no proxy"),
        ("http_proxy", "http://proxy.internal:3128", "http_proxy is set, but the workers use no proxy"),
    ],
)
def test_cli_rejects_a_bad_setting_before_connecting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["jira"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("worker", ["jira", "slack", "zendesk", "webhooks"])
def test_a_proxy_setting_stops_every_worker_at_start_instead_of_being_ignored(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, worker: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert main([worker]) == 2
    assert "HTTPS_PROXY is set, but the workers use no proxy" in capsys.readouterr().err
