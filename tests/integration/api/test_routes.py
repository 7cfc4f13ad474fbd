"""Every contract route through the real HTTP stack, on SQLite and on MariaDB."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from services.api.storage.db import Db
from services.api.storage.tables import incident_events, outbox
from tests.support.metrics import sample

Client = AsyncTestClient  # type: ignore[type-arg]


async def create(client: Any, message: str = "database is on fire") -> int:
    response = await client.post("/incident/", json={"message": message})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "INCIDENT CREATED"
    return int(body["ID"])


async def outbox_events(db: Db, incident_id: int) -> list[tuple[str, int]]:
    rows = await db.database.fetch_all(
        sa.select(incident_events.c.type, incident_events.c.version)
        .select_from(outbox.join(incident_events, outbox.c.event_row_id == incident_events.c.id))
        .where(outbox.c.incident_id == incident_id)
        .order_by(outbox.c.id)
    )
    return [(str(r[0]), int(r[1])) for r in rows]


async def test_create_returns_the_seed_body_with_json_content_type(client: Any) -> None:
    response = await client.post("/incident/", json={"message": "disk full"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "INCIDENT CREATED", "ID": "1"}


async def test_paths_work_with_and_without_trailing_slash(client: Any) -> None:
    assert (await client.post("/incident", json={"message": "a"})).status_code == 200
    assert (await client.get("/incident/1")).status_code == 200
    assert (await client.get("/incident/1/")).status_code == 200
    assert (await client.get("/incident")).status_code == 200
    assert (await client.get("/incident/")).status_code == 200


async def test_get_shows_the_seed_fields_first(client: Any) -> None:
    incident_id = await create(client, "issues with data creation")
    body = (await client.get(f"/incident/{incident_id}")).json()
    assert list(body)[:4] == ["status", "acknowledged", "message", "comments"]
    assert body["status"] == "unresolved"
    assert body["acknowledged"] == "no"
    assert body["message"] == "issues with data creation"
    assert body["comments"] == []
    assert body["id"] == incident_id
    assert body["version"] == 1


async def test_put_updates_everything_and_emits_one_event_per_change_in_order(client: Any, db: Db) -> None:
    incident_id = await create(client)
    response = await client.put(
        f"/incident/{incident_id}",
        json={"message": "new text", "acknowledged": "yes", "status": "resolved", "comments": "resolved by customer"},
    )
    assert response.status_code == 200
    assert response.json() == {"status": "INCIDENT UPDATED"}
    body = (await client.get(f"/incident/{incident_id}")).json()
    assert (body["message"], body["acknowledged"], body["status"]) == ("new text", "yes", "resolved")
    assert body["comments"] == ["resolved by customer"]
    assert body["version"] == 5
    assert await outbox_events(db, incident_id) == [
        ("created", 1),
        ("updated", 2),
        ("acknowledged", 3),
        ("commented", 4),
        ("resolved", 5),
    ]


async def test_put_accepts_comment_synonym_and_lists(client: Any) -> None:
    incident_id = await create(client)
    assert (await client.put(f"/incident/{incident_id}", json={"comment": "one"})).status_code == 200
    assert (await client.put(f"/incident/{incident_id}", json={"comments": ["two", "three"]})).status_code == 200
    assert (await client.get(f"/incident/{incident_id}")).json()["comments"] == ["one", "two", "three"]


async def test_put_without_comments_adds_no_empty_comment(client: Any) -> None:
    incident_id = await create(client)
    assert (await client.put(f"/incident/{incident_id}", json={"acknowledged": "yes"})).status_code == 200
    assert (await client.get(f"/incident/{incident_id}")).json()["comments"] == []


async def test_unchanged_values_emit_no_event(client: Any, db: Db) -> None:
    incident_id = await create(client)
    await client.put(f"/incident/{incident_id}", json={"acknowledged": "no", "status": "unresolved"})
    assert await outbox_events(db, incident_id) == [("created", 1)]
    assert (await client.get(f"/incident/{incident_id}")).json()["version"] == 1


async def test_actions(client: Any, db: Db) -> None:
    incident_id = await create(client)
    base = f"/incident/{incident_id}"
    assert (await client.post(f"{base}/acknowledge")).json() == {"status": "INCIDENT ACKNOWLEDGED"}
    assert (await client.post(f"{base}/comments", json={"comment": "looking"})).json() == {"status": "COMMENT ADDED"}
    assert (await client.post(f"{base}/resolve")).json() == {"status": "INCIDENT RESOLVED"}
    assert (await client.post(f"{base}/reopen")).json() == {"status": "INCIDENT REOPENED"}
    assert (await client.post(f"{base}/unacknowledge")).json() == {"status": "INCIDENT UNACKNOWLEDGED"}
    body = (await client.get(base)).json()
    assert (body["status"], body["acknowledged"], body["comments"]) == ("unresolved", "no", ["looking"])
    assert await outbox_events(db, incident_id) == [
        ("created", 1),
        ("acknowledged", 2),
        ("commented", 3),
        ("resolved", 4),
        ("reopened", 5),
        ("unacknowledged", 6),
    ]


async def test_delete_then_404_and_deleted_event(client: Any, db: Db) -> None:
    incident_id = await create(client)
    response = await client.delete(f"/incident/{incident_id}")
    assert response.status_code == 200
    assert response.json() == {"status": "INCIDENT DELETED"}
    assert (await client.get(f"/incident/{incident_id}")).status_code == 404
    second = await client.delete(f"/incident/{incident_id}")
    assert second.status_code == 404
    assert second.json() == {"status": "Not Found", "error": "incident not found"}
    assert (await client.put(f"/incident/{incident_id}", json={"message": "x"})).status_code == 404
    assert await outbox_events(db, incident_id) == [("created", 1), ("deleted", 2)]


async def test_list_filters_and_cursor_pagination(client: Any) -> None:
    ids = [await create(client, f"incident {n}") for n in range(7)]
    await client.post(f"/incident/{ids[1]}/resolve")
    await client.post(f"/incident/{ids[2]}/acknowledge")
    await client.delete(f"/incident/{ids[3]}")
    seen: list[int] = []
    cursor = None
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/incident/", params=query)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(ids) - {ids[3]}, reverse=True)
    resolved = (await client.get("/incident/", params={"status": "resolved"})).json()["items"]
    assert [i["id"] for i in resolved] == [ids[1]]
    acked = (await client.get("/incident/", params={"acknowledged": "yes", "status": "unresolved"})).json()["items"]
    assert [i["id"] for i in acked] == [ids[2]]


async def test_if_match_guards_against_lost_updates(client: Any) -> None:
    incident_id = await create(client)
    etag = (await client.get(f"/incident/{incident_id}")).headers["etag"]
    assert etag == '"1"'
    ok = await client.put(f"/incident/{incident_id}", json={"message": "mine"}, headers={"If-Match": etag})
    assert ok.status_code == 200
    stale = await client.put(f"/incident/{incident_id}", json={"message": "theirs"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["status"] == "Precondition Failed"
    assert (await client.get(f"/incident/{incident_id}")).json()["message"] == "mine"


async def test_idempotency_key_makes_a_retried_create_return_the_first_result(client: Any) -> None:
    headers = {"Idempotency-Key": "req-42"}
    first = await client.post("/incident/", json={"message": "once"}, headers=headers)
    second = await client.post("/incident/", json={"message": "once"}, headers=headers)
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert len((await client.get("/incident/")).json()["items"]) == 1
    reused = await client.post("/incident/", json={"message": "different"}, headers=headers)
    assert reused.status_code == 409


async def test_idempotency_key_on_comment_adds_it_once(client: Any) -> None:
    incident_id = await create(client)
    for _ in range(3):
        response = await client.post(
            f"/incident/{incident_id}/comments", json={"comment": "retry me"}, headers={"Idempotency-Key": "c-1"}
        )
        assert response.status_code == 200
    assert (await client.get(f"/incident/{incident_id}")).json()["comments"] == ["retry me"]


async def test_health_and_openapi(client: Any) -> None:
    assert (await client.get("/health/live")).json() == {"status": "live"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 503  # NATS is not running in this test
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["nats"] == "disconnected"
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/incident/{incident_id}" in schema["paths"]
    assert "/incident/{incident_id}/comments" in schema["paths"]


async def test_timeline_lists_every_change_with_actor_and_survives_delete(client: Any) -> None:
    incident_id = await create(client)
    await client.post(f"/incident/{incident_id}/acknowledge", headers={"X-Request-Id": "req-ack-1"})
    await client.post(f"/incident/{incident_id}/comments", json={"comment": "on it"})
    await client.delete(f"/incident/{incident_id}")
    timeline = (await client.get(f"/incident/{incident_id}/timeline")).json()
    assert timeline["incident_id"] == incident_id
    items = timeline["items"]
    assert [(i["type"], i["version"]) for i in items] == [
        ("incident.created", 1),
        ("incident.acknowledged", 2),
        ("incident.commented", 3),
        ("incident.deleted", 4),
    ]
    assert {i["actor"] for i in items} == {"anonymous"}
    assert items[1]["request_id"] == "req-ack-1"
    assert items[2]["comment"] == "on it"
    assert (await client.get("/incident/999/timeline")).status_code == 404


async def test_metrics_count_requests_per_route_and_show_the_backlog(client: Any) -> None:
    # The HTTP metrics are Litestar's Prometheus plugin's, in prometheus_client's process-wide registry.
    get_one = {"method": "GET", "path": "/incident/{incident_id}", "status_code": "200"}
    create_one = {"method": "POST", "path": "/incident", "status_code": "200"}
    before = (await client.get("/metrics")).text
    incident_id = await create(client)
    for _ in range(3):
        await client.get(f"/incident/{incident_id}")
    text = (await client.get("/metrics")).text
    assert _count(text, **get_one) - _count(before, **get_one) == 3
    assert _count(text, **create_one) - _count(before, **create_one) == 1
    assert sample(text, "incidents_api_request_duration_seconds_count", **get_one)
    assert sample(text, "process_cpu_seconds_total") is not None  # free with prometheus_client
    # NATS is down in this test, so the created event is still waiting in the outbox.
    assert sample(text, "incidents_api_outbox_backlog") == 1


def _count(text: str, **labels: str) -> float:
    return sample(text, "incidents_api_requests_total", **labels) or 0.0
