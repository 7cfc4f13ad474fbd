"""Bad input gets a 4xx in the contract's error shape, never a 500; odd text round-trips exactly."""

from __future__ import annotations

from typing import Any

import pytest

ERROR_KEYS = {"status", "error"}


def assert_error(response: Any, code: int, reason: str) -> None:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= ERROR_KEYS
    assert body["status"] == reason
    assert body["error"]
    assert "Traceback" not in response.text and "SELECT" not in response.text


@pytest.mark.parametrize(
    "raw",
    [b"{bad json", b"", b"null", b"[]", b'"text"', b'{"message": }', b"\xff\xfe"],
)
async def test_create_with_bad_json_is_400(client: Any, raw: bytes) -> None:
    response = await client.post("/incident/", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "Bad Request")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": ""},
        {"message": "   "},
        {"message": None},
        {"message": 5},
        {"message": ["a"]},
        {"message": "ok", "unknown": 1},
        {"msg": "typo"},
        {"message": "x" * 10_001},
    ],
)
async def test_create_with_wrong_or_missing_message_is_400(client: Any, body: Any) -> None:
    assert_error(await client.post("/incident/", json=body), 400, "Bad Request")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"acknowledged": "maybe"},
        {"status": "closed"},
        {"acknowledged": True},
        {"status": 1},
        {"comments": 3},
        {"comments": [1]},
        {"comments": ""},
        {"comments": [""]},
        {"message": ""},
        {"foo": "bar"},
        {"comments": ["x"] * 101},
    ],
)
async def test_update_with_bad_values_is_400_and_changes_nothing(client: Any, body: Any) -> None:
    created = (await client.post("/incident/", json={"message": "m"})).json()["ID"]
    assert_error(await client.put(f"/incident/{created}", json=body), 400, "Bad Request")
    after = (await client.get(f"/incident/{created}")).json()
    assert (after["version"], after["comments"], after["message"]) == (1, [], "m")


@pytest.mark.parametrize("raw_id", ["abc", "-1", "0", "1.5", "99999999999999999999999999", "1e3", "%20", "١"])
async def test_bad_ids_are_400(client: Any, raw_id: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, f"/incident/{raw_id}", json={"message": "x"})
        assert_error(response, 400, "Bad Request")
    assert_error(await client.post(f"/incident/{raw_id}/acknowledge"), 400, "Bad Request")


async def test_unknown_id_is_404(client: Any) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, "/incident/999999999999999999", json={"message": "x"})
        assert response.json() == {"status": "Not Found", "error": "incident not found"}
        assert response.status_code == 404
    assert (await client.post("/incident/424242/resolve")).status_code == 404


async def test_two_megabyte_body_is_413(client: Any) -> None:
    response = await client.post("/incident/", json={"message": "x" * 2_000_000})
    assert_error(response, 413, "Request Entity Too Large")


async def test_empty_comment_action_is_400(client: Any) -> None:
    created = (await client.post("/incident/", json={"message": "m"})).json()["ID"]
    for body in ({"comment": ""}, {"comment": " \n"}, {}, {"comment": 1}):
        assert_error(await client.post(f"/incident/{created}/comments", json=body), 400, "Bad Request")


async def test_bad_list_queries_are_400(client: Any) -> None:
    for query in (
        {"status": "open"},
        {"acknowledged": "maybe"},
        {"limit": 0},
        {"limit": 1000},
        {"limit": "x"},
        {"cursor": "!!!"},
        {"cursor": "aWQ6LTE"},
    ):
        assert_error(await client.get("/incident/", params=query), 400, "Bad Request")


async def test_bad_if_match_and_idempotency_key_are_400(client: Any) -> None:
    created = (await client.post("/incident/", json={"message": "m"})).json()["ID"]
    response = await client.put(f"/incident/{created}", json={"message": "n"}, headers={"If-Match": "abc"})
    assert_error(response, 400, "Bad Request")
    response = await client.post("/incident/", json={"message": "n"}, headers={"Idempotency-Key": "k" * 256})
    assert_error(response, 400, "Bad Request")


async def test_unknown_route_and_method(client: Any) -> None:
    assert_error(await client.get("/nope"), 404, "Not Found")
    assert_error(await client.patch("/incident/1", json={}), 405, "Method Not Allowed")


NASTY = [
    "quotes ' \" `backticks`",
    "back\\slash \\\\ \\n \\u0000-ish",
    "'; DROP TABLE incidents; --",
    "Robert'); DELETE FROM outbox WHERE ('1'='1",
    "emoji 🔥🚒 and CJK 火事 and RTL שלום",
    "percent %s %d {} {0} %(name)s",
    "newlines\nand\ttabs\r\n",
    "𝓤𝓷𝓲𝓬𝓸𝓭𝓮 astral plane 🧑‍🚒",
]


@pytest.mark.parametrize("text", NASTY)
async def test_odd_text_round_trips_exactly(client: Any, text: str) -> None:
    created = (await client.post("/incident/", json={"message": text})).json()["ID"]
    await client.post(f"/incident/{created}/comments", json={"comment": text})
    body = (await client.get(f"/incident/{created}")).json()
    assert body["message"] == text
    assert body["comments"] == [text]
