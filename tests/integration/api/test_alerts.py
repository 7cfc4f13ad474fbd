"""Alert fields on incidents, PagerDuty Events v2 and Alertmanager webhooks through the HTTP stack (SQLite, MariaDB)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.api.settings import AutoResolve, parse_integration_keys
from services.api.storage.db import Db
from services.api.storage.tables import incidents
from services.api.web.errors import TOO_DEEP
from tests.integration.api.conftest import api_settings
from tests.integration.api.test_routes import outbox_events
from tests.support.metrics import sample
from tests.support.polling import eventually

ROUTING_KEY = "R0UTINGKEYFORTESTS00000000000001"
JSON = "application/json"
TOKEN = "alert-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Any]:
    settings = msgspec.structs.replace(
        api_settings(database_url, tokens=[f"oncall:{TOKEN}"]),
        integration_keys=parse_integration_keys([f"monitoring:{ROUTING_KEY}"]),
    )
    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


def trigger(dedup_key: str | None = "db-down", summary: str = "database down", **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": summary, "source": "db-1", "severity": "critical", **payload},
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


async def open_with_key(api: Any, key: str) -> list[dict[str, Any]]:
    found = await api.get("/incident/", params={"dedup_key": key, "status": "unresolved"}, headers=AUTH)
    assert found.status_code == 200, found.text
    return list(found.json()["items"])


async def test_alert_fields_are_created_shown_changed_and_filtered(api: Any, db: Db) -> None:
    body = {"message": "cpu hot", "severity": "warning", "source": "node-7", "labels": {"team": "infra"}}
    incident_id = (await api.post("/incident/", json={**body, "dedup_key": "cpu"}, headers=AUTH)).json()["ID"]
    plain_id = (await api.post("/incident/", json={"message": "plain"}, headers=AUTH)).json()["ID"]
    shown = (await api.get(f"/incident/{incident_id}", headers=AUTH)).json()
    assert (shown["severity"], shown["source"], shown["labels"], shown["dedup_key"]) == (
        "warning",
        "node-7",
        {"team": "infra"},
        "cpu",
    )
    plain = (await api.get(f"/incident/{plain_id}", headers=AUTH)).json()
    assert (plain["severity"], plain["source"], plain["labels"], plain["dedup_key"]) == (None, None, {}, None)
    changed = await api.put(f"/incident/{incident_id}", json={"severity": "critical", "labels": {}}, headers=AUTH)
    assert changed.status_code == 200, changed.text
    shown = (await api.get(f"/incident/{incident_id}", headers=AUTH)).json()
    assert (shown["severity"], shown["labels"], shown["source"]) == ("critical", {}, "node-7")
    assert await outbox_events(db, int(incident_id)) == [("created", 1), ("updated", 2)]
    for query, expected in (
        ({"severity": "critical"}, [int(incident_id)]),
        ({"severity": "info"}, []),
        ({"source": "node-7"}, [int(incident_id)]),
        ({"dedup_key": "cpu"}, [int(incident_id)]),
    ):
        items = (await api.get("/incident/", params=query, headers=AUTH)).json()["items"]
        assert [i["id"] for i in items] == expected, query
    bad = await api.get("/incident/", params={"severity": "catastrophic"}, headers=AUTH)
    assert bad.status_code == 400


async def test_a_second_open_incident_with_the_same_dedup_key_is_a_conflict(api: Any) -> None:
    first = (await api.post("/incident/", json={"message": "a", "dedup_key": "k"}, headers=AUTH)).json()["ID"]
    second = await api.post("/incident/", json={"message": "b", "dedup_key": "k"}, headers=AUTH)
    assert second.status_code == 409
    assert "dedup_key" in second.json()["error"]
    await api.post(f"/incident/{first}/resolve", headers=AUTH)
    third = await api.post("/incident/", json={"message": "c", "dedup_key": "k"}, headers=AUTH)
    assert third.status_code == 200
    reopened = await api.post(f"/incident/{first}/reopen", headers=AUTH)
    assert reopened.status_code == 409


async def test_events_v2_trigger_acknowledge_resolve_by_dedup_key(api: Any, db: Db) -> None:
    answer = await api.post("/v2/enqueue", json=trigger(component="postgres", custom_details={"disk": 97}))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"status": "success", "message": "Event processed", "dedup_key": "db-down"}
    [incident] = await open_with_key(api, "db-down")
    assert incident["message"] == "database down"
    assert incident["severity"] == "critical"
    assert incident["source"] == "db-1"
    assert incident["labels"] == {"component": "postgres", "details.disk": "97"}
    for action in ("acknowledge", "resolve"):
        answer = await api.post(
            "/v2/enqueue", json={"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": "db-down"}
        )
        assert answer.status_code == 202, answer.text
    shown = (await api.get(f"/incident/{incident['id']}", headers=AUTH)).json()
    assert (shown["acknowledged"], shown["status"]) == ("yes", "resolved")
    timeline = (await api.get(f"/incident/{incident['id']}/timeline", headers=AUTH)).json()["items"]
    assert {item["actor"] for item in timeline} == {"monitoring"}
    again = await api.post("/v2/enqueue", json=trigger())
    assert again.status_code == 202
    [reopened] = await open_with_key(api, "db-down")
    assert reopened["id"] != incident["id"]


async def test_events_v2_repeat_triggers_are_counted_without_events(api: Any, db: Db) -> None:
    for _ in range(3):
        assert (await api.post("/v2/enqueue", json=trigger("flappy"))).status_code == 202
    [incident] = await open_with_key(api, "flappy")
    assert incident["alert_count"] == 3
    assert incident["version"] == 1
    assert await outbox_events(db, incident["id"]) == [("created", 1)]


async def test_events_v2_forty_triggers_open_one_incident_and_count_every_one(api: Any) -> None:
    # The test client runs requests one at a time; tests/e2e/test_alerts_in.py sends them truly at once.
    answers = await asyncio.gather(*(api.post("/v2/enqueue", json=trigger("storm")) for _ in range(40)))
    assert [a.status_code for a in answers] == [202] * 40, [a.text for a in answers if a.status_code != 202]
    [incident] = await open_with_key(api, "storm")
    assert incident["alert_count"] == 40


async def test_events_v2_generates_a_dedup_key(api: Any) -> None:
    answer = await api.post("/v2/enqueue", json=trigger(None))
    assert answer.status_code == 202
    key = answer.json()["dedup_key"]
    assert key and len(await open_with_key(api, key)) == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**trigger(), "routing_key": "nope"}, "unknown routing_key"),
        ({"routing_key": ROUTING_KEY, "event_action": "trigger"}, "'payload' is required"),
        ({"routing_key": ROUTING_KEY, "event_action": "resolve"}, "'dedup_key' is required"),
        ({**trigger(), "event_action": "explode"}, "event_action"),
        (trigger(summary="  "), "payload.summary"),
        ({**trigger(), "payload": {"summary": "x", "source": "y", "severity": "bad"}}, "severity"),
    ],
)
async def test_events_v2_refuses_bad_events_in_pagerduty_shape(api: Any, body: dict[str, Any], error: str) -> None:
    answer = await api.post("/v2/enqueue", json=body)
    assert answer.status_code == 400, answer.text
    refused = answer.json()
    assert refused["status"] == "invalid event"
    assert refused["message"] == "Event object is invalid"
    assert any(error in e for e in refused["errors"]), refused


@pytest.mark.parametrize(
    "fields",
    [
        {"payload": None, "client": None, "links": {}, "images": []},
        {"links": {}},
        {"links": [1]},
        {"links": [{"text": "no href"}]},
        {"images": {}},
        {"images": [{"href": "no src"}]},
        {"client": {}},
        {"client_url": []},
        {"payload": []},
        {"payload": "text"},
        {"payload": {"summary": "x", "source": "y", "severity": "info", "class": 5}},
        {"dedup_key": 7},
        {"routing_key": None},
    ],
)
async def test_events_v2_refuses_malformed_fields_in_pagerduty_shape(api: Any, fields: dict[str, Any]) -> None:
    answer = await api.post("/v2/enqueue", json={**trigger(), **fields})
    assert answer.status_code == 400, answer.text
    refused = answer.json()
    assert (refused["status"], refused["message"]) == ("invalid event", "Event object is invalid")
    assert refused["errors"], refused


async def test_events_v2_refuses_custom_details_nested_too_deeply(api: Any) -> None:
    deep = b"[" * 5000 + b"]" * 5000  # free-form JSON: msgspec's depth guard, not a server fault
    payload = b'{"summary": "s", "source": "db-1", "severity": "info", "custom_details": ' + deep + b"}"
    event = b'{"routing_key": "%s", "event_action": "trigger", "payload": %s}' % (ROUTING_KEY.encode(), payload)
    answer = await api.post("/v2/enqueue", content=event, headers={"Content-Type": JSON})
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"status": "invalid event", "message": "Event object is invalid", "errors": [TOO_DEEP]}


async def test_events_v2_refuses_malformed_json(api: Any) -> None:
    answer = await api.post("/v2/enqueue", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["status"] == "invalid event"


def notification(status: str, alerts: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "incidents",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "severity": "page", "service": "checkout"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }
    return {**body, **overrides}


def alert(instance: str, status: str = "firing") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "HighLatency", "severity": "page", "service": "checkout", "instance": instance},
        "annotations": {},
        "startsAt": "2026-11-27T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": f"fp-{instance}",
    }


async def test_alertmanager_group_lifecycle(api: Any, db: Db) -> None:
    key = '{}:{alertname="HighLatency"}'
    first = await api.post("/integrations/alertmanager", json=notification("firing", [alert("a")]), headers=AUTH)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "INCIDENT CREATED"
    incident_id = int(first.json()["ID"])
    shown = (await api.get(f"/incident/{incident_id}", headers=AUTH)).json()
    assert shown["message"] == "HighLatency"
    assert shown["severity"] == "critical"
    assert shown["labels"] == {
        "alertname": "HighLatency",
        "severity": "page",
        "service": "checkout",
        "generator_url": "http://prometheus/graph",  # a link for the responder, kept
    }
    assert shown["source"] == "http://alertmanager.example:9093"
    assert shown["dedup_key"] == key
    # A retried notification changes nothing.
    retried = await api.post("/integrations/alertmanager", json=notification("firing", [alert("a")]), headers=AUTH)
    assert retried.json() == {"status": "ALERTS RECORDED", "dedup_key": key, "ID": str(incident_id)}
    # One joins, then the first resolves, within the group: recorded as comments on the same incident.
    joined = notification("firing", [alert("a"), alert("b")])
    await api.post("/integrations/alertmanager", json=joined, headers=AUTH)
    await api.post("/integrations/alertmanager", json=joined, headers=AUTH)
    partly = notification("firing", [alert("a", "resolved"), alert("b")])
    await api.post("/integrations/alertmanager", json=partly, headers=AUTH)
    # A notification with alerts left out does not take the missing ones for resolved.
    truncated = notification("firing", [alert("c")], truncatedAlerts=1)
    await api.post("/integrations/alertmanager", json=truncated, headers=AUTH)
    shown = (await api.get(f"/incident/{incident_id}", headers=AUTH)).json()
    assert shown["comments"] == [
        "Alert firing: HighLatency (instance=b)",
        "Alert resolved: HighLatency (instance=a)",
        "Alert firing: HighLatency (instance=c)",
    ]
    assert shown["status"] == "unresolved"
    done = notification("resolved", [alert(i, "resolved") for i in "abc"])
    resolved = await api.post("/integrations/alertmanager", json=done, headers=AUTH)
    assert resolved.json()["status"] == "INCIDENT RESOLVED"
    again = await api.post("/integrations/alertmanager", json=done, headers=AUTH)
    assert again.json()["status"] == "NOTHING TO RESOLVE"
    assert [t for t, _ in await outbox_events(db, incident_id)] == [
        "created",
        "commented",
        "commented",
        "commented",
        "resolved",
    ]
    refire = await api.post("/integrations/alertmanager", json=notification("firing", [alert("a")]), headers=AUTH)
    assert refire.json()["status"] == "INCIDENT CREATED"
    assert int(refire.json()["ID"]) != incident_id


async def test_alertmanager_group_whose_firing_alerts_outgrow_a_text_column_is_stored(api: Any) -> None:
    """The firing alerts are kept as one JSON list: three long fingerprints take 90 KB, more than MariaDB's TEXT."""
    alerts = [{**alert(f"i{n}"), "fingerprint": f"{n}" * 30_000} for n in range(3)]
    answer = await api.post("/integrations/alertmanager", json=notification("firing", alerts), headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "INCIDENT CREATED"


async def test_alertmanager_message_prefers_the_summary(api: Any) -> None:
    body = notification(
        "firing", [alert("a")], commonAnnotations={"summary": "Checkout is slow"}, groupKey="g2", groupLabels={}
    )
    incident_id = (await api.post("/integrations/alertmanager", json=body, headers=AUTH)).json()["ID"]
    shown = (await api.get(f"/incident/{incident_id}", headers=AUTH)).json()
    assert shown["message"] == "Checkout is slow"


@pytest.mark.parametrize(
    "body",
    [
        notification("firing", [alert("a")], version="3"),
        notification("exploding", [alert("a")]),
        notification("firing", [alert("a")], groupKey=" "),
        {"groupKey": "x"},
        [],
    ],
)
async def test_alertmanager_refuses_bad_payloads_with_our_error_shape(api: Any, body: Any) -> None:
    answer = await api.post("/integrations/alertmanager", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert answer.json()["status"] == "Bad Request"
    assert answer.json()["error"]


async def test_alertmanager_needs_the_bearer_token_and_events_v2_does_not(api: Any) -> None:
    answer = await api.post("/integrations/alertmanager", json=notification("firing", [alert("a")]))
    assert answer.status_code == 401
    assert (await api.post("/v2/enqueue", json=trigger("no-bearer"))).status_code == 202


OTHER_KEY = "0THERKEYFORTESTS0000000000000002"


@pytest.fixture
async def auto_resolving_api(database_url: str) -> AsyncIterator[Any]:
    settings = msgspec.structs.replace(
        api_settings(database_url, tokens=[f"oncall:{TOKEN}"]),
        integration_keys=parse_integration_keys([f"monitoring:{ROUTING_KEY}", f"other:{OTHER_KEY}"]),
        auto_resolve=(AutoResolve(integration="monitoring", seconds=2),),
    )
    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


async def test_auto_resolve_resolves_only_the_configured_integrations_quiet_incidents(auto_resolving_api: Any) -> None:
    api = auto_resolving_api
    assert (await api.post("/v2/enqueue", json=trigger("quiet"))).status_code == 202
    assert (await api.post("/v2/enqueue", json={**trigger("elsewhere"), "routing_key": OTHER_KEY})).status_code == 202
    [quiet] = await open_with_key(api, "quiet")

    async def resolved() -> dict[str, Any]:
        shown = dict((await api.get(f"/incident/{quiet['id']}", headers=AUTH)).json())
        assert shown["status"] == "resolved", shown
        return shown

    shown = await eventually(resolved, timeout=30, interval=0.2, what="the quiet incident to auto-resolve")
    assert shown["comments"][-1].startswith("Resolved automatically: no alert since")
    timeline = (await api.get(f"/incident/{quiet['id']}/timeline", headers=AUTH)).json()["items"]
    assert [(i["type"], i["actor"]) for i in timeline][-2:] == [
        ("incident.commented", "auto-resolve"),
        ("incident.resolved", "auto-resolve"),
    ]
    assert len(await open_with_key(api, "elsewhere")) == 1


async def test_auto_resolve_goes_past_an_incident_it_cannot_resolve(auto_resolving_api: Any, db: Db) -> None:
    api = auto_resolving_api
    assert (await api.post("/v2/enqueue", json=trigger("broken"))).status_code == 202
    [broken] = await open_with_key(api, "broken")
    # A row no version of the API writes (damaged by hand, or left by a newer version): it sorts first.
    await db.database.execute(
        sa.update(incidents).where(incidents.c.id == broken["id"]).values(severity="not-a-severity")
    )
    assert (await api.post("/v2/enqueue", json=trigger("quiet"))).status_code == 202
    [quiet] = await open_with_key(api, "quiet")

    async def resolved() -> bool:
        shown = (await api.get(f"/incident/{quiet['id']}", headers=AUTH)).json()
        return bool(shown["status"] == "resolved")

    await eventually(resolved, timeout=30, interval=0.2, what="the quiet incident to auto-resolve past the broken one")
    metrics = (await api.get("/metrics")).text
    assert (sample(metrics, "incidents_api_background_errors_total", task="auto-resolve") or 0) >= 1

    # A later quiet incident resolves too: the loop goes on after each round that met the broken one.
    assert (await api.post("/v2/enqueue", json=trigger("later"))).status_code == 202
    assert await open_with_key(api, "later")

    async def resolved_again() -> bool:
        return not await open_with_key(api, "later")

    await eventually(resolved_again, timeout=30, interval=0.2, what="a later incident to auto-resolve")
    status = await db.database.fetch_val(sa.select(incidents.c.status).where(incidents.c.id == broken["id"]))
    assert status == "unresolved"


async def test_alertmanager_actions_are_credited_to_the_integration_and_keep_its_links(api: Any) -> None:
    firing = notification("firing", [alert("a")])
    firing["commonAnnotations"] = {
        "runbook_url": "https://runbooks.example/latency",
        "dashboard": "https://g.example/d",
    }
    created = await api.post("/integrations/alertmanager", json=firing, headers=AUTH)
    assert created.status_code == 200, created.text
    incident_id = created.json()["ID"]
    labels = (await api.get(f"/incident/{incident_id}", headers=AUTH)).json()["labels"]
    assert labels["runbook_url"] == "https://runbooks.example/latency"
    assert labels["dashboard"] == "https://g.example/d"
    assert labels["generator_url"] == "http://prometheus/graph"
    resolved = await api.post(
        "/integrations/alertmanager", json=notification("resolved", [alert("a", "resolved")]), headers=AUTH
    )
    assert resolved.status_code == 200, resolved.text
    timeline = (await api.get(f"/incident/{incident_id}/timeline", headers=AUTH)).json()["items"]
    assert {item["actor"] for item in timeline} == {"alertmanager:oncall"}
