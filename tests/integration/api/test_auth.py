"""API_TOKENS: every route but health and docs needs a bearer token; the token's name is the actor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.config import ConfigError
from tests.integration.api.conftest import api_settings
from tests.support.polling import eventually


@pytest.fixture
async def secured(sqlite_database_url: str) -> AsyncIterator[Any]:
    app = create_app(api_settings(sqlite_database_url, tokens=["alice:s3cret-a-0123456789", "plain-token-0123456789"]))
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic czNjcmV0LWE=", "Bearer ", "s3cret-a-0123456789"])
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
    alice = {"Authorization": "Bearer s3cret-a-0123456789"}
    created = await secured.post("/incident/", json={"message": "x"}, headers=alice)
    assert created.status_code == 200
    incident_id = created.json()["ID"]
    plain = {"Authorization": "Bearer plain-token-0123456789"}
    assert (await secured.post(f"/incident/{incident_id}/acknowledge", headers=plain)).status_code == 200
    items = (await secured.get(f"/incident/{incident_id}/timeline", headers=alice)).json()["items"]
    assert items[0]["actor"] == "alice"
    assert items[1]["actor"] == "token-2"  # its place in API_TOKENS: nothing derived from the token


ALICE = {"Authorization": "Bearer s3cret-a-0123456789"}


async def test_readiness_shows_states_and_counts_to_anyone_and_the_relay_error_only_to_a_token_holder(
    secured: Any,
) -> None:
    # NATS is unreachable here: the relay's round fails, and its error text names what it could not reach.
    assert (await secured.post("/incident/", json={"message": "x"}, headers=ALICE)).status_code == 200

    async def relay_error_shown() -> dict[str, Any]:
        checks: dict[str, Any] = (await secured.get("/health/ready", headers=ALICE)).json()["checks"]
        assert "relay_last_error" in checks, checks
        return checks

    with_token = await eventually(relay_error_shown, timeout=10, what="the relay to fail a round")
    without = (await secured.get("/health/ready")).json()["checks"]
    wrong = (await secured.get("/health/ready", headers={"Authorization": "Bearer wrong"})).json()["checks"]
    for checks in (without, wrong):
        assert "relay_last_error" not in checks and "relay_parked" not in checks, checks
        assert set(checks) <= {
            "database",
            "nats",
            "relay",
            "authentication",
            "outbox_backlog",
            "outbox_oldest_age_seconds",
            "relay_parked_count",
            "relay_stalled_seconds",
        }, checks
        assert checks["nats"] == with_token["nats"] and checks["relay"] == with_token["relay"]
    assert without["authentication"] == "on"


@pytest.mark.parametrize(
    "tokens", [["short"], ["alice:fifteen-chars-x"], ["alice:long-enough-token-1", "0123456789abcde"]]
)
def test_a_token_shorter_than_16_characters_stops_the_start(tokens: list[str]) -> None:
    with pytest.raises(ConfigError, match="shorter than 16 characters"):
        ApiSettings.from_env({"API_TOKENS": ",".join(tokens)})


def test_an_integration_key_shorter_than_16_characters_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="shorter than 16 characters"):
        ApiSettings.from_env({"INTEGRATION_KEYS": "grafana:0123456789abcdef,loki:k1"})
    assert ApiSettings.from_env({"INTEGRATION_KEYS": "grafana:0123456789abcdef"}).integration_keys


async def test_no_tokens_is_allowed_but_logged_loudly_and_shown_in_readiness(sqlite_database_url: str) -> None:
    with structlog.testing.capture_logs() as logs:
        async with AsyncTestClient(create_app(api_settings(sqlite_database_url))) as open_client:
            checks = (await open_client.get("/health/ready")).json()["checks"]
    assert checks["authentication"] == "off"
    warnings = [line for line in logs if "API_TOKENS" in line["event"]]
    assert warnings and warnings[0]["log_level"] == "critical", logs
