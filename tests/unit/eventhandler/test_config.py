"""Settings and the subscriptions file fail at boot on bad values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.eventhandler.errors import RequestError
from services.eventhandler.settings import Settings
from services.eventhandler.subscriptions import (
    check_worker,
    consumer_subscriptions,
    event_subject,
    load_subscriptions,
    parse_start,
)
from shared.config import ConfigError
from shared.events import ALL_SUBJECTS
from shared.jetstream import NO_EVENTS_SUBJECT
from tests.support.processes import ROOT


def test_defaults() -> None:
    settings = Settings.from_env({"SUBSCRIPTIONS_FILE": str(ROOT / "config/subscriptions.toml")})
    assert settings.nats.servers == ["nats://127.0.0.1:4222"]
    assert settings.stream_replicas == 1
    assert settings.health_port is None and settings.health_host == "127.0.0.1"
    assert settings.log_json is None and settings.log_level == "INFO"


def test_values() -> None:
    settings = Settings.from_env(
        {
            "SUBSCRIPTIONS_FILE": str(ROOT / "config/subscriptions.toml"),
            "NATS_URL": "nats://a:1,nats://b:2",
            "STREAM_REPLICAS": "3",
            "HEALTH_PORT": "9100",
            "LOG_FORMAT": "JSON",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.nats.servers == ["nats://a:1", "nats://b:2"]
    assert (settings.stream_replicas, settings.health_port, settings.log_json, settings.log_level) == (
        3,
        9100,
        True,
        "DEBUG",
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STREAM_REPLICAS", "0", "STREAM_REPLICAS"),
        ("STREAM_REPLICAS", "two", "STREAM_REPLICAS"),
        ("HEALTH_PORT", "70000", "HEALTH_PORT"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
        ("SUBSCRIPTIONS_FILE", "/nonexistent/subs.toml", "SUBSCRIPTIONS_FILE"),
        ("NATS_URL", "127.0.0.1:4222", "NATS_URL"),
    ],
)
def test_bad_values_fail(name: str, value: str, message: str) -> None:
    env = {"SUBSCRIPTIONS_FILE": str(ROOT / "config/subscriptions.toml"), name: value}
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_shipped_subscriptions_file_loads() -> None:
    subscriptions = load_subscriptions(ROOT / "config/subscriptions.toml")
    assert set(subscriptions) == {"jira", "slack", "zendesk"}
    assert subscriptions["slack"] == sorted(ALL_SUBJECTS)
    assert "incident.unacknowledged" not in subscriptions["jira"]


@pytest.mark.parametrize(
    "text",
    [
        "[workers.jira]\nevents = ['exploded']\n",
        "[workers.Jira]\nevents = ['created']\n",
        "[workers.jira]\n",
        "[other]\n",
        "workers = 3\n",
        "[workers.jira\n",
    ],
)
def test_bad_subscriptions_files_fail(tmp_path: Path, text: str) -> None:
    path = tmp_path / "subs.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="SUBSCRIPTIONS_FILE"):
        load_subscriptions(path)


def test_event_names() -> None:
    assert event_subject("incident.created") == event_subject("created") == "incident.created"
    with pytest.raises(RequestError, match=r"unknown event type: incident\.foo$"):
        event_subject("incident.foo")
    with pytest.raises(RequestError, match=r"unknown event type: incident\.none$"):
        event_subject(NO_EVENTS_SUBJECT)


@pytest.mark.parametrize("name", ["", "Jira", "1jira", "a.b", "x" * 33, "jira>"])
def test_bad_worker_names(name: str) -> None:
    with pytest.raises(RequestError, match="bad worker name"):
        check_worker(name)


def test_start_positions() -> None:
    assert parse_start(None) is None
    assert parse_start("now") == (DeliverPolicy.NEW, None)
    assert parse_start("all") == (DeliverPolicy.ALL, None)
    assert parse_start("2026-11-25T09:00:00Z") == (
        DeliverPolicy.BY_START_TIME,
        datetime(2026, 11, 25, 9, tzinfo=UTC),
    )
    for bad in ("yesterday", "2026-11-25T09:00:00", ""):
        with pytest.raises(RequestError, match="start must be"):
            parse_start(bad)


def test_consumer_subscriptions() -> None:
    assert consumer_subscriptions(ConsumerConfig(filter_subjects=[NO_EVENTS_SUBJECT])) == []
    assert consumer_subscriptions(ConsumerConfig(filter_subjects=["incident.b", "incident.a"])) == [
        "incident.a",
        "incident.b",
    ]
    assert consumer_subscriptions(ConsumerConfig(filter_subject="incident.created")) == ["incident.created"]
    assert consumer_subscriptions(ConsumerConfig()) == sorted(ALL_SUBJECTS)
