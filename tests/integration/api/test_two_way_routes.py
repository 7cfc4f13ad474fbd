"""The two-way routes in the API process: absent secrets answer 404, tokens are not what authenticates them,
and malformed vendor bodies get 400 in the error shape (never 5xx), on SQLite and MariaDB."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from services.api.app import build_components, create_app
from services.api.integrations.settings import TwoWaySettings
from shared.config import Secret
from tests.integration.api.conftest import api_settings
from tests.support.twoway import JIRA_SECRET, SLACK_SECRET, ZENDESK_SECRET, jira_headers, slack_headers, zendesk_headers

ROUTES = ("/integrations/slack/interactions", "/integrations/jira/webhook", "/integrations/zendesk/webhook")


@pytest.fixture
async def signed_client(database_url: str) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    two_way = TwoWaySettings(
        slack_signing_secret=Secret(SLACK_SECRET),
        jira_webhook_secret=Secret(JIRA_SECRET),
        zendesk_webhook_secret=Secret(ZENDESK_SECRET),
        jira_account_id="557058:worker",
        zendesk_email="bot@example.com",
    )
    settings = msgspec.structs.replace(
        api_settings(database_url, tokens=["ops:t0ken-of-the-ops-team"]), two_way=two_way
    )
    async with AsyncTestClient(create_app(settings, build_components(settings))) as client:
        yield client


@pytest.mark.parametrize("path", ROUTES)
async def test_without_its_secret_a_vendor_route_is_not_there(
    client: AsyncTestClient,  # type: ignore[type-arg]
    path: str,
) -> None:
    answer = await client.post(path, content=b"{}")
    assert answer.status_code == 404
    assert answer.json()["status"] == "Not Found" and "not configured" in answer.json()["error"]


async def test_signed_routes_need_no_bearer_token_and_refuse_bad_bodies_with_400(
    signed_client: AsyncTestClient,  # type: ignore[type-arg]
) -> None:
    bad_slack = [b"payload=%7Bnot-json", b"nothing=here", b"payload=" + json.dumps({"type": "block_actions"}).encode()]
    for body in bad_slack:
        answer = await signed_client.post(ROUTES[0], content=body, headers=slack_headers(body))
        assert answer.status_code == 400, answer.text
        assert answer.json()["status"] == "Bad Request"
    value = json.dumps(
        {
            "type": "block_actions",
            "user": {"id": "U1", "username": "a"},
            "actions": [{"action_id": "acknowledge", "value": "not-a-version", "action_ts": "1.2"}],
        }
    )
    body = b"payload=" + value.encode()
    assert (await signed_client.post(ROUTES[0], content=body, headers=slack_headers(body))).status_code == 400
    for body in (
        b"[1, 2]",
        b"{not json",
        json.dumps(
            {"webhookEvent": "jira:issue_updated", "changelog": {"items": [{"field": "status"}]}, "issue": "OPS-1"}
        ).encode(),
    ):
        answer = await signed_client.post(ROUTES[1], content=body, headers=jira_headers(body))
        assert answer.status_code == 400, answer.text
    for body in (b"{}", json.dumps({"external_id": "incident-1", "status": 5}).encode()):
        answer = await signed_client.post(ROUTES[2], content=body, headers=zendesk_headers(body))
        assert answer.status_code == 400, answer.text
    # A view submission or another app's button is not ours: answered, ignored.
    other = b"payload=" + json.dumps({"type": "view_submission"}).encode()
    answer = await signed_client.post(ROUTES[0], content=other, headers=slack_headers(other))
    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
    # Without a signature, the bearer token does not let anyone in either.
    answer = await signed_client.post(
        ROUTES[1], content=b"{}", headers={"Authorization": "Bearer t0ken-of-the-ops-team"}
    )
    assert answer.status_code == 401
