"""API_TOKENS: every route but health and docs needs a bearer token; the token's name is the actor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from tests.integration.api.conftest import api_settings


@pytest.fixture
async def secured(sqlite_database_url: str) -> AsyncIterator[Any]:
    app = create_app(api_settings(sqlite_database_url, tokens=["alice:s3cret-a", "plain-token"]))
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic czNjcmV0LWE=", "Bearer ", "s3cret-a"])
async def test_missing_or_wrong_token_is_401(secured: Any, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (("GET", "/incident/"), ("POST", "/incident/"), ("GET", "/subscriptions")):
        response = await secured.request(method, path, json={"message": "x"}, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"status": "Unauthorized", "error": "missing or invalid bearer token"}


async def test_health_and_docs_need_no_token(secured: Any) -> None:
    assert (await secured.get("/health/live")).status_code == 200
    assert (await secured.get("/schema/openapi.json")).status_code == 200


async def test_valid_token_works_and_names_the_actor(secured: Any) -> None:
    alice = {"Authorization": "Bearer s3cret-a"}
    created = await secured.post("/incident/", json={"message": "x"}, headers=alice)
    assert created.status_code == 200
    incident_id = created.json()["ID"]
    plain = {"Authorization": "Bearer plain-token"}
    assert (await secured.post(f"/incident/{incident_id}/acknowledge", headers=plain)).status_code == 200
    items = (await secured.get(f"/incident/{incident_id}/timeline", headers=alice)).json()["items"]
    assert items[0]["actor"] == "alice"
    assert items[1]["actor"].startswith("token-")
