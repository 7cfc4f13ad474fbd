"""Pure rules of webhooks out: the address guard, URL parsing, signatures, retry delays, rotation."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.workers.httpclient import retry_after_seconds
from services.workers.webhooks.loop import retry_delay
from services.workers.webhooks.settings import WebhookSettings
from services.workers.webhooks.signing import signature_header
from shared.config import ConfigError
from shared.egress import BadUrl, TargetRefused, allowed_addresses, parse_target, refusal
from shared.webhooks import Endpoint, EndpointSecret, new_secret, rotate

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("address", "strict", "relaxed"),
    [
        ("93.184.215.14", True, True),
        ("2606:4700::1111", True, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("10.0.0.1", False, True),
        ("172.31.255.1", False, True),
        ("192.168.1.1", False, True),
        ("fd00::1", False, True),
        ("::ffff:10.0.0.1", False, True),
        ("169.254.169.254", False, False),
        ("169.254.0.1", False, False),
        ("fe80::1", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("64:ff9b::a9fe:a9fe", False, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        # IPv4-compatible (::/96) and IPv4-translated (::ffff:0:0:0/96) forms carry the IPv4 address too
        ("::10.0.0.1", False, True),
        ("::a9fe:a9fe", False, False),
        ("::127.0.0.1", False, True),
        ("::ffff:0:10.0.0.1", False, True),
        ("::ffff:0:a9fe:a9fe", False, False),
        ("::93.184.215.14", True, True),
        ("64:ff9b:1::a9fe:a9fe", False, False),
        # cloud metadata: refused even where private networks are allowed
        ("fd00:ec2::254", False, False),
        ("fd00:ec2::23", False, False),
        ("fd20:ce::254", False, False),
        ("168.63.129.16", False, False),
        ("100.100.100.200", False, False),
        ("192.0.0.192", False, False),
        ("::ffff:0:a83f:8110", False, False),
    ],
)
def test_address_guard(address: str, strict: bool, relaxed: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (refusal(ip, allow_private=False) is None) is strict
    assert (refusal(ip, allow_private=True) is None) is relaxed


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "168.63.129.16", "::ffff:169.254.170.2"])
def test_cloud_metadata_is_named_as_such_even_with_private_networks_allowed(address: str) -> None:
    reason = refusal(ipaddress.ip_address(address), allow_private=True)
    assert reason is not None and "cloud metadata" in reason


async def test_a_refused_host_name_never_says_what_it_resolves_to() -> None:
    async def internal(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    async def unknown(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    refusals = []
    for resolver in (internal, unknown):
        with pytest.raises(TargetRefused) as refused:
            await allowed_addresses(parse_target("https://intranet.example/hook"), False, resolver)
        refusals.append(refused.value)
    shown = {str(r) for r in refusals}
    assert shown == {"intranet.example does not resolve to an address webhooks may call"}, "no oracle either"
    assert "10.1.2.3" in refusals[0].detail and "private" in refusals[0].detail, "the log says why"


def test_parse_target_keeps_host_port_and_path() -> None:
    target = parse_target("https://Hooks.Example.com/in?x=1")
    assert (target.scheme, target.host, target.port, target.path) == ("https", "hooks.example.com", 443, "/in?x=1")
    assert target.host_header == "hooks.example.com"
    assert target.url_for("93.184.215.14") == "https://93.184.215.14:443/in?x=1"
    six = parse_target("http://[2606:4700::1111]:8080")
    assert six.host_header == "[2606:4700::1111]:8080" and six.path == "/"
    assert six.url_for("2606:4700::1111") == "http://[2606:4700::1111]:8080/"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x/",
        "x",
        "http://",
        "http://a b/",
        "http://u:p@x/",
        "http://x/#frag",
        "http://x:0x/",
        "h" * 3000,
        "http://\u00e4\ud800/",
    ],
)
def test_parse_target_refuses(url: str) -> None:
    with pytest.raises(BadUrl):
        parse_target(url)


def test_signature_header_verifies_with_standardwebhooks_for_each_secret() -> None:
    first, second, stranger = new_secret(), new_secret(), new_secret()
    body = b'{"id":"e1","type":"incident.created"}'
    timestamp = int(datetime.now(UTC).timestamp())
    header = signature_header([first, second], "e1", timestamp, body)
    assert len(header.split(" ")) == 2 and all(part.startswith("v1,") for part in header.split(" "))
    headers = {"webhook-id": "e1", "webhook-timestamp": str(timestamp), "webhook-signature": header}
    for secret in (first, second):
        assert Webhook(secret).verify(body, headers) == {"id": "e1", "type": "incident.created"}
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(first).verify(body + b" ", headers)


def test_retry_delay_grows_with_jitter_and_honours_retry_after() -> None:
    settings = WebhookSettings(retry_base=5.0, retry_max=60.0)
    for attempt, ceiling in ((1, 5.0), (2, 10.0), (3, 20.0), (10, 60.0)):
        delays = {retry_delay(attempt, settings, None) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1, "jittered"
    assert retry_delay(3, settings, 7200.0) == 7200.0


def test_retry_after_as_seconds_or_http_date() -> None:
    now = NOW.timestamp()
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds("Fri, 27 Nov 2026 12:01:00 GMT", now) == 60.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
    assert retry_after_seconds("2.5", now) == 2.5, "the vendor workers' parser and this one are one"
    assert retry_after_seconds("Fri, 27 Nov 2026 11:59:00 GMT", now) == 0.0


def test_rotation_keeps_old_secret_until_the_overlap_ends() -> None:
    old = EndpointSecret(value=new_secret(), created_at=NOW - timedelta(days=1))
    endpoint = Endpoint(
        id="a" * 16, url="https://x/", events=["incident.created"], secrets=[old], created_at=NOW, updated_at=NOW
    )
    fresh = new_secret()
    rotated = rotate(endpoint, fresh, NOW, timedelta(hours=1))
    assert rotated.signing_secrets(NOW) == [old.value, fresh]
    assert rotated.signing_secrets(NOW + timedelta(hours=1, seconds=1)) == [fresh]
    again = rotate(rotated, new_secret(), NOW + timedelta(hours=2), timedelta(hours=1))
    assert old.value not in [s.value for s in again.secrets], "expired secrets are dropped"
    assert old.value not in repr(rotated) and fresh not in repr(rotated)


def test_settings_fail_at_start_on_bad_values() -> None:
    assert WebhookSettings.from_env({}).timeout == 15.0
    assert WebhookSettings.from_env({}).retry_budget == 3 * 24 * 3600
    for env in (
        {"WEBHOOK_TIMEOUT_SECONDS": "soon"},
        {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "maybe"},
        {"WEBHOOK_RETRY_BASE_SECONDS": "10", "WEBHOOK_RETRY_MAX_SECONDS": "5"},
        {"WEBHOOK_TIMEOUT_SECONDS": "40", "WEBHOOK_ACK_WAIT_SECONDS": "30"},
    ):
        with pytest.raises(ConfigError):
            WebhookSettings.from_env(env)
