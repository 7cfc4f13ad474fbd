"""The webhook routes: registration with the SSRF guard, bad input, reading, changing, rotating, deleting."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.integration.webhooks.conftest import webhook_client
from tests.support.processes import NatsServer

PUBLIC = "http://93.184.215.14/hooks"  # a global address: allowed without DNS
Client = AsyncTestClient  # type: ignore[type-arg]


def assert_error(response: Any, code: int, *fragments: str) -> None:
    assert response.status_code == code, response.text
    body = response.json()
    assert set(body) == {"status", "error"}, body
    for fragment in fragments:
        assert fragment in body["error"], body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"url": PUBLIC, "events": ["incident.exploded"]}, "events"),
        ({"url": PUBLIC, "events": []}, "at least one event type"),
        ({"url": "not a url", "events": ["incident.created"]}, "url"),
        ({"url": "ftp://93.184.215.14/x", "events": ["incident.created"]}, "http:// or https://"),
        ({"url": "http://user:pw@93.184.215.14/", "events": ["incident.created"]}, "credentials"),
        ({"url": "http:///nohost", "events": ["incident.created"]}, "no host"),
        ({"url": "http://93.184.215.14:99999/", "events": ["incident.created"]}, "malformed"),
        ({"events": ["incident.created"]}, "url"),
        ({"url": PUBLIC}, "events"),
        ({"url": PUBLIC, "events": ["incident.created"], "secret": "mine"}, "secret"),
        ({"url": PUBLIC, "events": "incident.created"}, "events"),
    ],
)
async def test_bad_input_is_a_400_in_the_error_shape(client: Client, body: dict[str, Any], fragment: str) -> None:
    assert_error(await client.post("/webhooks", json=body), 400, fragment)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
async def test_loopback_private_and_link_local_targets_are_refused(client: Client, url: str) -> None:
    assert_error(await client.post("/webhooks", json={"url": url, "events": ["incident.created"]}), 400, "refused")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.1.1/",
        "http://[fe80::1]/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[::a9fe:a9fe]/",
        "http://[::ffff:0:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fd20:ce::254]/computeMetadata/v1/",
        "http://168.63.129.16/machine",
        "http://100.100.100.200/latest/meta-data/",
    ],
)
async def test_link_local_and_cloud_metadata_are_refused_even_when_private_networks_are_allowed(
    private_client: Client, url: str
) -> None:
    response = await private_client.post("/webhooks", json={"url": url, "events": ["incident.created"]})
    assert_error(response, 400, "refused")


@pytest.mark.parametrize("url", ["http://[::10.1.2.3]/hook", "http://[::ffff:0:10.1.2.3]/hook"])
async def test_ipv4_compatible_and_translated_forms_of_private_addresses_are_refused(client: Client, url: str) -> None:
    assert_error(await client.post("/webhooks", json={"url": url, "events": ["incident.created"]}), 400, "refused")


@pytest.mark.parametrize("host", ["localhost", "no-such-host.invalid"])
async def test_a_refused_host_name_does_not_say_what_it_resolves_to(client: Client, host: str) -> None:
    response = await client.post("/webhooks", json={"url": f"http://{host}:9/hook", "events": ["incident.created"]})
    assert_error(response, 400, f"{host} does not resolve to an address webhooks may call")
    assert "127.0.0.1" not in response.text and "::1" not in response.text and "loopback" not in response.text


async def test_private_networks_allowed_when_configured(private_client: Client) -> None:
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.0.0.8/hook"):
        response = await private_client.post("/webhooks", json={"url": url, "events": ["incident.created"]})
        assert response.status_code == 201, response.text


async def test_create_read_list_change_delete(client: Client) -> None:
    created = await client.post(
        "/webhooks", json={"url": PUBLIC, "events": ["incident.resolved", "incident.created"], "description": "ops"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    assert body["enabled"] is True and body["events"] == ["incident.created", "incident.resolved"]
    webhook = body["id"]

    shown = await client.get(f"/webhooks/{webhook}")
    assert shown.status_code == 200
    assert body["secret"] not in shown.text and "secret" not in shown.json()
    assert shown.json()["description"] == "ops"
    listed = await client.get("/webhooks")
    assert [w["id"] for w in listed.json()["items"]] == [webhook]
    assert body["secret"] not in listed.text

    changed = await client.patch(f"/webhooks/{webhook}", json={"events": ["incident.deleted"], "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["incident.deleted"] and changed.json()["enabled"] is False
    assert_error(await client.patch(f"/webhooks/{webhook}", json={}), 400, "at least one")
    assert_error(await client.patch(f"/webhooks/{webhook}", json={"url": "http://127.0.0.1/"}), 400, "refused")
    assert_error(await client.patch(f"/webhooks/{webhook}", json={"events": ["nope"]}), 400)

    deleted = await client.delete(f"/webhooks/{webhook}")
    assert deleted.status_code == 200 and deleted.json() == {"status": "WEBHOOK DELETED"}
    assert_error(await client.get(f"/webhooks/{webhook}"), 404, "webhook not found")
    assert_error(await client.delete(f"/webhooks/{webhook}"), 404, "webhook not found")
    assert (await client.get("/webhooks")).json() == {"items": []}
    assert_error(await client.get("/webhooks/not-an-id"), 400)


async def test_rotate_returns_a_new_secret_and_keeps_the_old_one_for_the_overlap(client: Client) -> None:
    created = (await client.post("/webhooks", json={"url": PUBLIC, "events": ["incident.created"]})).json()
    rotated = await client.post(f"/webhooks/{created['id']}/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != created["secret"]
    secrets = (await client.get(f"/webhooks/{created['id']}")).json()["secrets"]
    assert len(secrets) == 2
    assert secrets[0]["expires_at"] == rotated.json()["previous_expires_at"]
    assert "expires_at" not in secrets[1]
    assert_error(await client.post(f"/webhooks/{'a' * 16}/rotate"), 404, "webhook not found")


async def test_delivery_log_of_an_unknown_webhook_is_a_404(client: Client) -> None:
    assert_error(await client.get(f"/webhooks/{'b' * 16}/deliveries"), 404, "webhook not found")
    created = (await client.post("/webhooks", json={"url": PUBLIC, "events": ["incident.created"]})).json()
    assert (await client.get(f"/webhooks/{created['id']}/deliveries")).json() == {"items": []}


async def test_past_webhook_max_endpoints_a_create_is_a_409_until_one_is_deleted(
    client: Client, sqlite_database_url: str, nats_server: NatsServer
) -> None:
    existing = len((await client.get("/webhooks")).json()["items"])  # the bucket outlives a test
    body = {"url": PUBLIC, "events": ["incident.created"]}
    async for capped in webhook_client(
        sqlite_database_url, nats_server, allow_private=False, max_endpoints=existing + 2
    ):
        made = [(await capped.post("/webhooks", json=body)).json()["id"] for _ in range(2)]
        assert_error(await capped.post("/webhooks", json=body), 409, "WEBHOOK_MAX_ENDPOINTS")
        assert len((await capped.get("/webhooks")).json()["items"]) == existing + 2
        assert (await capped.delete(f"/webhooks/{made[0]}")).status_code == 200
        assert (await capped.post("/webhooks", json=body)).status_code == 201
