"""The lean routes (services/api/web/lean.py) for alerts and creates: the same duties as the middleware gives
every other route, a cheaper access line for accepted alerts, and every refusal answered by the full route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import msgspec
import pytest
import structlog
from litestar.testing import AsyncTestClient

from services.api.alerts.fastpath import alert_routes
from services.api.alerts.pagerduty import RoutingKeys
from services.api.alerts.service import AlertIntake
from services.api.app import create_app
from services.api.settings import parse_integration_keys
from services.api.web.lean import LeanRoutes
from services.api.web.metrics import http_metrics_config
from tests.integration.api.conftest import api_settings
from tests.support.metrics import sample

ROUTING_KEY = "R0UTINGKEYFORFASTPATH00000000001"
TOKEN = "fast-path-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AM = "/integrations/alertmanager"
ENQUEUE = "/v2/enqueue"


@pytest.fixture
async def api(sqlite_database_url: str) -> AsyncIterator[Any]:
    settings = msgspec.structs.replace(
        api_settings(sqlite_database_url, tokens=[f"oncall:{TOKEN}"]),
        integration_keys=parse_integration_keys([f"monitoring:{ROUTING_KEY}"]),
        max_body_bytes=4096,
    )
    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


def notification(group: str, status: str = "firing") -> dict[str, Any]:
    alert = {"status": status, "labels": {"alertname": group, "severity": "critical"}, "fingerprint": f"{group}-fp"}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}"}}',
        "status": status,
        "alerts": [alert],
        "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, "severity": "critical"},
    }


def event(key: str, routing_key: str = ROUTING_KEY) -> dict[str, Any]:
    payload = {"summary": "disk full", "source": "db-1", "severity": "error"}
    return {"routing_key": routing_key, "event_action": "trigger", "dedup_key": key, "payload": payload}


def access_lines(logs: list[Any], path: str) -> list[tuple[str, int]]:
    return [(e["log_level"], e["status"]) for e in logs if e.get("event") == "request" and e.get("path") == path]


async def test_accepted_alerts_log_their_access_line_at_debug_and_refusals_at_info(api: Any) -> None:
    with structlog.testing.capture_logs() as logs:
        created = await api.post(AM, json=notification("disk"), headers=AUTH)
        repeated = await api.post(AM, json=notification("disk"), headers=AUTH)
        enqueued = await api.post(ENQUEUE, json=event("db-disk"))
        refused = await api.post(ENQUEUE, json=event("db-disk", routing_key="not-a-key"))
        unauthorised = await api.post(AM, json=notification("disk"))
    assert [r.status_code for r in (created, repeated, enqueued, refused, unauthorised)] == [200, 200, 202, 400, 401]
    assert repeated.json()["status"] == "ALERTS RECORDED"
    assert access_lines(logs, AM) == [("debug", 200), ("debug", 200), ("info", 401)]
    assert access_lines(logs, ENQUEUE) == [("debug", 202), ("info", 400)]


async def counts(api: Any) -> dict[tuple[str, str], float]:
    """The HTTP request counters of the alert routes (process-wide: compare before and after)."""
    text = (await api.get("/metrics")).text
    found = {}
    for path, status in ((AM, "200"), (ENQUEUE, "202"), (ENQUEUE, "400")):
        found[(path, status)] = sample(text, "incidents_api_requests_total", path=path, status_code=status) or 0.0
    return found


async def test_fast_answers_carry_the_request_id_and_count_in_the_http_metrics_once(api: Any) -> None:
    before = await counts(api)
    answer = await api.post(AM, json=notification("cpu"), headers={**AUTH, "X-Request-Id": "req-fast-1"})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "req-fast-1"
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"status": "INCIDENT CREATED", "dedup_key": '{}:{alertname="cpu"}', "ID": "1"}
    incident = (await api.get("/incident/1", headers=AUTH)).json()
    assert incident["dedup_key"] == '{}:{alertname="cpu"}'
    # Trailing slash, as the full route takes it.
    assert (await api.post(ENQUEUE + "/", json=event("cpu-key"))).status_code == 202
    refused = await api.post(ENQUEUE, json=event("", routing_key=ROUTING_KEY))  # refused: through the full route
    assert refused.status_code == 400
    assert refused.json()["status"] == "invalid event"
    after = await counts(api)
    assert {k: after[k] - before[k] for k in after} == {(AM, "200"): 1, (ENQUEUE, "202"): 1, (ENQUEUE, "400"): 1}
    text = (await api.get("/metrics")).text
    assert sample(text, "incidents_api_requests_in_progress", path=ENQUEUE) == 0


async def test_refusals_keep_the_full_routes_answers(api: Any) -> None:
    too_large = await api.post(AM, content=b'{"version": "4", "x": "' + b"a" * 5000 + b'"}', headers=AUTH)
    assert too_large.status_code == 413
    assert too_large.json() == {"status": "Request Entity Too Large", "error": "request body is too large"}
    not_json = await api.post(AM, content=b"{not json", headers=AUTH)
    assert not_json.status_code == 400 and not_json.json()["status"] == "Bad Request"
    blank_group = await api.post(AM, json={**notification("x"), "groupKey": "  "}, headers=AUTH)
    assert blank_group.status_code == 400
    assert blank_group.json() == {"status": "Bad Request", "error": "groupKey must not be empty"}
    wrong_type = await api.post(ENQUEUE, json={**event("k"), "event_action": "explode"})
    assert wrong_type.status_code == 400 and wrong_type.json()["status"] == "invalid event"
    unknown_key = await api.post(ENQUEUE, json=event("k", routing_key="nope"))
    assert unknown_key.json()["errors"] == ["unknown routing_key: it must be one of INTEGRATION_KEYS"]


async def test_a_content_length_of_non_ascii_digits_goes_to_the_full_route() -> None:
    fast = LeanRoutes(
        alert_routes(AlertIntake(cast(Any, None)), RoutingKeys(())),  # never reached
        tokens=(),
        max_body_bytes=4096,
        prometheus=http_metrics_config(),
    )
    scope: Any = {"type": "http", "method": "POST", "path": ENQUEUE, "headers": [(b"content-length", b"\xb2")]}
    route = fast.route_of(scope)
    assert route is not None
    handed_on: list[Any] = []

    async def full(scope: Any, receive: Any, send: Any) -> None:
        handed_on.append(scope)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        raise AssertionError(f"the fast path answered: {message}")

    await route(scope, receive, send, full)  # "²" passes str.isdigit() but not int()
    assert handed_on == [scope]


async def creates_counted(api: Any) -> float:
    text = (await api.get("/metrics")).text
    return sample(text, "incidents_api_requests_total", method="POST", path="/incident", status_code="200") or 0.0


async def test_a_create_answers_as_the_full_route_does(api: Any) -> None:
    body = {"message": "disk full", "severity": "critical", "labels": {"team": "db"}}
    headers = {**AUTH, "X-Request-Id": "req-create-1"}
    counted_before = await creates_counted(api)
    with structlog.testing.capture_logs() as logs:
        created = await api.post("/incident/", json=body, headers=headers)
        bare = await api.post("/incident", json={"message": "no slash"}, headers=AUTH)
    assert await creates_counted(api) == counted_before + 2  # under the full route's own label
    assert created.status_code == 200 and bare.status_code == 200
    assert created.json()["status"] == "INCIDENT CREATED"
    assert created.headers["x-request-id"] == "req-create-1"
    assert created.headers["etag"] == '"1"'
    assert access_lines(logs, "/incident/") == [("info", 200)]  # a create keeps its access line at info
    shown = (await api.get(f"/incident/{created.json()['ID']}", headers=AUTH)).json()
    assert (shown["message"], shown["severity"], shown["labels"]) == ("disk full", "critical", {"team": "db"})


async def test_a_retried_create_with_its_idempotency_key_gets_the_first_answer(api: Any) -> None:
    headers = {**AUTH, "Idempotency-Key": "create-once-1"}
    first = await api.post("/incident/", json={"message": "once"}, headers=headers)
    again = await api.post("/incident/", json={"message": "once"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await api.post("/incident/", json={"message": "something else"}, headers=headers)
    assert other.status_code == 409  # the same key for another body: the route's answer
    listed = (await api.get("/incident/", params={"q": "once"}, headers=AUTH)).json()["items"]
    assert len(listed) == 1


async def test_refused_creates_get_the_full_routes_answers(api: Any) -> None:
    unknown_field = await api.post("/incident/", json={"message": "x", "colour": "red"}, headers=AUTH)
    assert unknown_field.status_code == 400 and unknown_field.json()["status"] == "Bad Request"
    empty = await api.post("/incident/", json={"message": ""}, headers=AUTH)
    assert empty.status_code == 400
    bad_key = await api.post("/incident/", json={"message": "x"}, headers={**AUTH, "Idempotency-Key": " "})
    assert bad_key.json() == {"status": "Bad Request", "error": "Idempotency-Key must be 1 to 255 printable characters"}
    no_token = await api.post("/incident/", json={"message": "x"})
    assert no_token.status_code == 401
    with_query = await api.post("/incident/?dry=1", json={"message": "by the full route"}, headers=AUTH)
    assert with_query.status_code == 200


async def test_creates_and_alerts_take_the_lean_path_and_other_routes_do_not(api: Any) -> None:
    lean = api.app.lean_routes

    def scope(method: str, path: str, query: bytes = b"") -> Any:
        return {"type": "http", "method": method, "path": path, "query_string": query, "headers": []}

    for path in ("/incident/", "/incident", AM, AM + "/", ENQUEUE, ENQUEUE + "/"):
        assert lean.route_of(scope("POST", path)) is not None, path
    for method, path, query in (
        ("GET", "/incident/", b""),
        ("POST", "/incident/1/acknowledge", b""),
        ("POST", "/incident/", b"dry=1"),
        ("PUT", "/incident/1", b""),
    ):
        assert lean.route_of(scope(method, path, query)) is None, (method, path)
