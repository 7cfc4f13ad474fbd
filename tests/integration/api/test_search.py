"""Search, label filters, triage order and who-did-what on the list, on SQLite and on MariaDB."""

from __future__ import annotations

from typing import Any

import pytest


async def create(client: Any, message: str, **fields: object) -> int:
    response = await client.post("/incident/", json={"message": message, **fields})
    assert response.status_code == 200, response.text
    return int(response.json()["ID"])


async def listed(client: Any, **params: object) -> list[int]:
    response = await client.get("/incident/", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_q_searches_message_source_labels_and_comments(client: Any) -> None:
    by_message = await create(client, "Checkout latency above 2s")
    by_source = await create(client, "disk full", source="prometheus-eu")
    by_label = await create(client, "queue backlog", labels={"team": "payments"})
    by_comment = await create(client, "memory pressure")
    assert (
        await client.post(f"/incident/{by_comment}/comments", json={"comment": "rolled back kubernetes"})
    ).is_success
    other = await create(client, "nothing to see")

    assert await listed(client, q="checkout") == [by_message]
    assert await listed(client, q="latency checkout") == [by_message]  # every word, any order
    assert await listed(client, q="check") == [by_message]  # a word prefix
    assert await listed(client, q="prometheus") == [by_source]
    assert await listed(client, q="payments") == [by_label]
    assert await listed(client, q="kubernetes") == [by_comment]
    assert await listed(client, q="checkout kubernetes") == []
    assert await listed(client, q="zebra") == []
    assert other not in await listed(client, q="disk")
    assert await listed(client, q='"); DROP TABLE incidents; --') == []  # operators are never passed through
    assert len(await listed(client)) == 5


async def test_label_and_source_filters(client: Any) -> None:
    payments = await create(client, "a", labels={"team": "payments", "env": "prod"}, source="am")
    staging = await create(client, "b", labels={"team": "payments", "env": "staging"}, source="pd")
    await create(client, "c", labels={"team": "search"})
    assert await listed(client, **{"labels.team": "payments"}) == [staging, payments]
    assert await listed(client, **{"labels.team": "payments", "labels.env": "prod"}) == [payments]
    assert await listed(client, **{"labels.team": "payments", "source": "pd"}) == [staging]
    assert await listed(client, **{"labels.nope": "x"}) == []


@pytest.mark.parametrize(
    "params",
    [
        {"labels": "x"},
        {"lables.team": "x"},
        {"search": "x"},
        {"sort": "oldest"},
        {"labels.": "x"},
        {"cursor": "2.5"},
        {"cursor": "9.no.5"},
    ],
)
async def test_unknown_or_bad_query_parameters_are_a_400(client: Any, params: dict[str, str]) -> None:
    response = await client.get("/incident/", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "Bad Request"
    assert response.json()["error"]


async def test_sort_by_severity_pages_most_severe_first_unacknowledged_first_then_newest(client: Any) -> None:
    severities = ["info", "critical", None, "warning", "error", "critical", "info", None, "error", "critical"]
    ids = [await create(client, f"n{n}", **({"severity": s} if s else {})) for n, s in enumerate(severities)]
    acked = {ids[5], ids[3]}
    for incident_id in acked:
        assert (await client.post(f"/incident/{incident_id}/acknowledge")).is_success
    rank = {"critical": 0, "error": 1, "warning": 2, "info": 3, None: 4}
    expected = sorted(ids, key=lambda i: (rank[severities[ids.index(i)]], i in acked, -i))
    seen: list[int] = []
    cursor = None
    while True:
        page = (
            await client.get(
                "/incident/", params={"sort": "severity", "limit": 3, **({"cursor": cursor} if cursor else {})}
            )
        ).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert seen[:3] == [ids[9], ids[1], ids[5]]
    assert (await client.get("/incident/", params={"cursor": "0.no.5"})).status_code == 400  # ranked, unranked order
    assert (await client.get("/incident/", params={"cursor": "5", "sort": "severity"})).status_code == 400


async def test_the_list_and_the_page_say_who_acknowledged_when_it_resolved_and_the_last_change(client: Any) -> None:
    incident_id = await create(client, "who did it")
    assert (await client.post(f"/incident/{incident_id}/acknowledge")).is_success
    item = (await client.get("/incident/")).json()["items"][0]
    assert item["acknowledged_by"] == "anonymous"
    assert item["acknowledged_at"]
    assert item["last_change"]["type"] == "incident.acknowledged"
    assert "resolved_at" not in item
    assert (await client.post(f"/incident/{incident_id}/resolve")).is_success
    page = (await client.get(f"/incident/{incident_id}")).json()
    assert page["resolved_at"]
    assert page["last_change"]["type"] == "incident.resolved"
    assert page["last_change"]["actor"] == "anonymous"


async def test_a_note_on_acknowledge_and_resolve_is_kept_and_a_stray_body_is_a_400(client: Any) -> None:
    incident_id = await create(client, "with notes")
    response = await client.post(f"/incident/{incident_id}/acknowledge", json={"comment": "on it"})
    assert response.status_code == 200, response.text
    response = await client.post(f"/incident/{incident_id}/resolve", json={"comment": "restarted the pod"})
    assert response.status_code == 200, response.text
    assert (await client.get(f"/incident/{incident_id}")).json()["comments"] == ["on it", "restarted the pod"]
    timeline = [item["type"] for item in (await client.get(f"/incident/{incident_id}/timeline")).json()["items"]]
    assert timeline[1:] == ["incident.acknowledged", "incident.commented", "incident.resolved", "incident.commented"]

    response = await client.post(f"/incident/{incident_id}/reopen", json={"note": "typo"})
    assert response.status_code == 400, response.text
    assert (await client.get(f"/incident/{incident_id}")).json()["status"] == "resolved"
    assert (await client.post(f"/incident/{incident_id}/reopen")).status_code == 200  # no body still works
