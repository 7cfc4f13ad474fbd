"""Alert fields on the incident aggregate, and how Alertmanager and PagerDuty bodies map onto them: no fixtures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from services.api.alerts import alertmanager, pagerduty
from services.api.incidents.domain import (
    KEEP,
    MAX_LABELS,
    Acknowledged,
    AlertFields,
    AlertUpdate,
    Incident,
    IncidentUpdate,
    InvalidInput,
    Severity,
)
from services.api.settings import ApiSettings, AutoResolve
from shared.config import ConfigError
from shared.events import CloudEvent, decode_event

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FIELDS = AlertFields.of(Severity.ERROR, "prom", {"team": "db"}, "k1")


def test_open_keeps_the_fields_and_the_event_carries_them() -> None:
    incident = Incident.open("db down", T0, FIELDS)
    assert incident.changes[0].alert == FIELDS
    assert incident.open_dedup_key == "k1"


def test_the_dedup_key_stops_deduplicating_once_resolved_or_deleted() -> None:
    incident = Incident.open("db down", T0, FIELDS)
    incident.resolve(T0)
    assert incident.open_dedup_key is None
    incident.reopen(T0)
    assert incident.open_dedup_key == "k1"
    incident.delete(T0)
    assert incident.open_dedup_key is None


def test_changing_fields_records_one_updated_event_and_no_change_records_none() -> None:
    incident = Incident.open("db down", T0, FIELDS)
    incident.apply(IncidentUpdate(alert=AlertUpdate(severity=Severity.CRITICAL, labels=None)), T0)
    assert [c.type.value for c in incident.changes] == ["created", "updated"]
    assert incident.alert == AlertFields.of(Severity.CRITICAL, "prom", None, "k1")
    incident.apply(IncidentUpdate(alert=AlertUpdate(severity=Severity.CRITICAL)), T0)
    assert len(incident.changes) == 2


def test_an_update_naming_only_alert_fields_is_not_empty() -> None:
    IncidentUpdate(alert=AlertUpdate(source="x")).validate()
    with pytest.raises(InvalidInput):
        IncidentUpdate(alert=AlertUpdate()).validate()
    assert AlertUpdate().empty and AlertUpdate().severity is KEEP


@pytest.mark.parametrize(
    ("source", "labels", "dedup_key"),
    [
        (" ", None, None),
        (None, {"": "x"}, None),
        (None, {f"k{n}": "v" for n in range(MAX_LABELS + 1)}, None),
        (None, None, "x" * 256),
        (None, None, "\t"),
    ],
)
def test_invalid_fields_are_refused(source: str | None, labels: dict[str, str] | None, dedup_key: str | None) -> None:
    with pytest.raises(InvalidInput):
        AlertFields.of(None, source, labels, dedup_key)


def test_tracking_alerts_notes_joins_and_resolves_in_one_comment() -> None:
    incident = Incident.open("latency", T0, FIELDS)
    incident.firing = frozenset({"a"})
    incident.track_alerts(frozenset({"b"}), ["B joined"], ["A left"], T0)
    assert incident.comments == ["Alert firing: B joined\nAlert resolved: A left"]
    assert [c.type.value for c in incident.changes] == ["created", "commented"]
    assert incident.firing == frozenset({"b"})


def test_events_stored_before_alert_fields_existed_still_decode() -> None:
    old = (
        b'{"specversion":"1.0","id":"e1","source":"/incidents/api","type":"incident.created","subject":"1",'
        b'"time":"2026-11-25T12:00:00Z","datacontenttype":"application/json","incidentversion":1,"data":{"incident":'
        b'{"id":1,"status":"unresolved","acknowledged":"no","message":"m","comments":[],"version":1,'
        b'"created_at":"2026-11-25T12:00:00Z","updated_at":"2026-11-25T12:00:00Z"}}}'
    )
    event: CloudEvent = decode_event(old)
    assert (event.data.incident.severity, event.data.incident.labels, event.data.incident.dedup_key) == (None, {}, None)


def note(**overrides: object) -> alertmanager.Notification:
    body: dict[str, object] = {
        "version": "4",
        "groupKey": '{}:{alertname="X"}',
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "X", "pod": "p1"}, "fingerprint": "f1"}],
        "groupLabels": {"alertname": "X", "cluster": "eu"},
        "commonLabels": {"alertname": "X"},
        "externalURL": "http://am:9093",
    }
    return msgspec.convert(body | overrides, alertmanager.Notification)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("critical", Severity.CRITICAL),
        ("PAGE", Severity.CRITICAL),
        ("major", Severity.ERROR),
        ("warn", Severity.WARNING),
        ("low", Severity.INFO),
        ("whatever", Severity.WARNING),
        ("", None),
    ],
)
def test_alertmanager_severities_map_onto_ours(raw: str, expected: Severity | None) -> None:
    assert alertmanager.severity({"severity": raw} if raw else {}) is expected


def test_alertmanager_message_falls_back_to_alert_name_and_group_labels() -> None:
    assert alertmanager.message(note()) == "X (cluster=eu)"
    assert alertmanager.message(note(commonAnnotations={"summary": " Slow "})) == "Slow"
    assert alertmanager.message(note(groupLabels={}, commonLabels={})) == "Alert"


def test_alertmanager_long_group_keys_are_hashed_into_a_dedup_key() -> None:
    key = alertmanager.dedup_key(note(groupKey="g" * 400))
    assert key.startswith("alertmanager:") and len(key) <= 255
    assert alertmanager.dedup_key(note(groupKey="g" * 400)) == key


def test_alertmanager_fields_and_alert_descriptions() -> None:
    fields = alertmanager.alert_fields(note())
    assert (fields.source, fields.label_map, fields.dedup_key) == (
        "http://am:9093",
        {"alertname": "X"},
        note().groupKey,
    )
    assert alertmanager.describe(note()) == {"f1": "X (pod=p1)"}
    assert alertmanager.firing(note()) == frozenset({"f1"})


def test_pagerduty_payload_becomes_fields_and_labels() -> None:
    payload = pagerduty.PagerDutyPayload(
        summary="s", source="host-1", severity="warning", component="db", custom_details={"disk": 97, "fs": "/"}
    )
    fields = pagerduty.alert_fields(payload, "k")
    assert fields.severity is Severity.WARNING
    assert fields.label_map == {"component": "db", "details.disk": "97", "details.fs": "/"}


def test_pagerduty_problems_name_each_missing_part() -> None:
    event = pagerduty.PagerDutyEvent(routing_key="r", event_action="acknowledge")
    assert pagerduty.problems(event) == ["'dedup_key' is required for event_action acknowledge"]
    event = pagerduty.PagerDutyEvent(routing_key="r", event_action="trigger")
    assert pagerduty.problems(event) == ["'payload' is required for event_action trigger"]


def test_auto_resolve_settings_are_checked_at_start() -> None:
    env = {"INTEGRATION_KEYS": "grafana:k1-long-enough-key", "ALERT_AUTO_RESOLVE": "grafana:3600, alertmanager:86400"}
    assert ApiSettings.from_env(env).auto_resolve == (
        AutoResolve("grafana", 3600),
        AutoResolve("alertmanager", 86400),
    )
    for bad in ("grafana", "grafana:soon", "nobody:60", "grafana:0", "grafana:60,grafana:70"):
        with pytest.raises(ConfigError):
            ApiSettings.from_env({**env, "ALERT_AUTO_RESOLVE": bad})
    for keys in ("grafana", "grafana:", "alertmanager:k1-long-enough-key", "a:k1-long-enough-key,a:k2-long-enough-key"):
        with pytest.raises(ConfigError):
            ApiSettings.from_env({"INTEGRATION_KEYS": keys})


def test_a_quiet_incident_resolves_itself_once_and_a_recent_alert_keeps_it_open() -> None:
    incident = Incident.open("latency", T0, FIELDS)
    incident.last_alert_at = T0
    assert not incident.resolve_when_quiet(T0 - timedelta(seconds=1), T0)
    assert incident.resolve_when_quiet(T0, T0 + timedelta(hours=1))
    assert [c.type.value for c in incident.changes] == ["created", "commented", "resolved"]
    assert not incident.resolve_when_quiet(T0, T0 + timedelta(hours=2))


def test_a_put_changes_alert_fields_right_after_the_message() -> None:
    incident = Incident.open("db down", T0, FIELDS)
    update = IncidentUpdate(
        message="db really down", acknowledged=Acknowledged.YES, alert=AlertUpdate(severity=Severity.CRITICAL)
    )
    incident.apply(update, T0)
    assert [c.type.value for c in incident.changes] == ["created", "updated", "updated", "acknowledged"]
    assert incident.changes[1].alert == FIELDS and incident.changes[2].alert.severity is Severity.CRITICAL
