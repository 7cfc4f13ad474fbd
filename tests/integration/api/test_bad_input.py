"""Bad input gets a 4xx in the contract's error shape, never a 500; odd text round-trips exactly."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.app import create_app
from tests.integration.api.conftest import api_settings

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


@pytest.mark.parametrize(
    "value",
    ['"²"', "²", '"' + "9" * 5000 + '"', "9" * 5000, '"3"x', '"-1"', '""', "*", '"1", "2"'],
    ids=[
        "superscript",
        "bare-superscript",
        "5000-digits",
        "bare-5000-digits",
        "junk",
        "negative",
        "empty",
        "star",
        "list",
    ],
)
async def test_malformed_if_match_is_400_on_every_conditional_route(client: Any, value: str) -> None:
    created = (await client.post("/incident/", json={"message": "m"})).json()["ID"]
    # The test client sends header text as UTF-8; tests/fuzz sends the raw Latin-1 byte over a socket.
    headers = [("If-Match", value.encode())]
    assert_error(await client.put(f"/incident/{created}", json={"message": "n"}, headers=headers), 400, "Bad Request")
    assert_error(await client.post(f"/incident/{created}/resolve", headers=headers), 400, "Bad Request")
    assert_error(await client.delete(f"/incident/{created}", headers=headers), 400, "Bad Request")
    assert (await client.get(f"/incident/{created}")).json()["version"] == 1


@pytest.mark.parametrize("value", ["9" * 5000, "²", "x1", "-3", "1.5"])
async def test_malformed_last_event_id_is_400(client: Any, value: str) -> None:
    response = await client.get("/incident/stream", headers=[("Last-Event-ID", value.encode())])
    assert_error(response, 400, "Bad Request")


def test_no_body_field_or_parameter_is_named_like_a_dependency() -> None:
    """Litestar takes a validation error of a field named like a dependency for a server fault (a 500): with a
    dependency `links`, `{"links": {}}` sent to /v2/enqueue got 500. No request name may be a dependency's."""
    app = create_app(api_settings("sqlite+aiosqlite:///unused.db"))
    dependencies = set(app.dependencies)
    schema = app.openapi_schema.to_schema()
    bodies = schema["components"]["schemas"]
    clashes = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", [])}
            for content in operation.get("requestBody", {}).get("content", {}).values():
                ref = content["schema"].get("$ref", "")
                names |= set(bodies.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
            clashes += [f"{method.upper()} {path}: {name}" for name in sorted(names & dependencies)]
    assert not clashes


async def test_unknown_route_and_method(client: Any) -> None:
    assert_error(await client.get("/nope"), 404, "Not Found")
    assert_error(await client.patch("/incident/1", json={}), 405, "Method Not Allowed")


async def test_the_largest_values_the_api_accepts_are_stored_whole(client: Any) -> None:
    """MariaDB's TEXT holds 65,535 bytes: 4-byte characters and JSON-escaped control characters at every limit
    must still fit (labels here are about 400 KB once encoded)."""
    wide = "🔥"
    labels = {f"{i:03d}" + "k" * 125: "\x01" * 1024 for i in range(64)}
    body = {"message": wide * 10_000, "source": wide * 255, "dedup_key": wide * 255, "labels": labels}
    created = await client.post("/incident/", json=body)
    assert created.status_code == 200, created.text
    incident_id = created.json()["ID"]
    changed = await client.put(f"/incident/{incident_id}", json={"comments": [wide * 10_000], "labels": labels})
    assert changed.status_code == 200, changed.text
    shown = (await client.get(f"/incident/{incident_id}")).json()
    assert {key: shown[key] for key in body} == body
    assert shown["comments"] == [wide * 10_000]


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
