"""The vendors' signatures, checked with HMACs computed here: the window's edges, the Jira method prefix,
Zendesk's two timestamp forms, and malformed headers refused as bad signatures (401), never errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from services.api.integrations.signatures import BadSignature, verify_jira, verify_slack, verify_zendesk

SECRET = b"s3cret"
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
NOW = 1_800_000_000.0


def slack(stamp: int, body: bytes = BODY) -> dict[str, str]:
    digest = hmac.new(SECRET, f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": str(stamp), "x-slack-signature": f"v0={digest}"}


def zendesk(stamp: str, body: bytes = BODY) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(SECRET, stamp.encode() + body, hashlib.sha256).digest()).decode()
    return {"x-zendesk-webhook-signature-timestamp": stamp, "x-zendesk-webhook-signature": digest}


@pytest.mark.parametrize("skew", [0, 300, -300])
def test_slack_accepts_a_signature_within_300_seconds(skew: int) -> None:
    verify_slack(SECRET, slack(int(NOW) + skew), BODY, NOW)


@pytest.mark.parametrize("skew", [301, -301])
def test_slack_refuses_a_timestamp_301_seconds_off(skew: int) -> None:
    with pytest.raises(BadSignature, match="300 s"):
        verify_slack(SECRET, slack(int(NOW) + skew), BODY, NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-slack-request-timestamp": str(int(NOW))},
        {"x-slack-request-timestamp": "soon", "x-slack-signature": "v0=00"},
        {"x-slack-request-timestamp": str(int(NOW)), "x-slack-signature": "v0=\u00e9"},
    ],
)
def test_slack_refuses_missing_or_malformed_headers(headers: dict[str, str]) -> None:
    with pytest.raises(BadSignature):
        verify_slack(SECRET, headers, BODY, NOW)


def test_slack_refuses_a_tampered_body() -> None:
    with pytest.raises(BadSignature, match="does not match"):
        verify_slack(SECRET, slack(int(NOW)), BODY + b"x", NOW)


@pytest.mark.parametrize("method", ["sha256", "sha1", "sha512", "SHA256"])
def test_jira_reads_the_method_prefix(method: str) -> None:
    digest = hmac.new(SECRET, BODY, method.lower()).hexdigest()
    verify_jira(SECRET, {"x-hub-signature": f"{method}={digest}"}, BODY)


@pytest.mark.parametrize(
    "signature",
    ["", "deadbeef", "md5=" + hashlib.md5(BODY).hexdigest(), "sha256=" + "0" * 64],
)
def test_jira_refuses_wrong_missing_or_unknown_signatures(signature: str) -> None:
    with pytest.raises(BadSignature):
        verify_jira(SECRET, {"x-hub-signature": signature} if signature else {}, BODY)


def test_zendesk_accepts_its_iso_timestamps_and_unix_seconds() -> None:
    verify_zendesk(SECRET, zendesk(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 299))), BODY, NOW)
    verify_zendesk(SECRET, zendesk(str(int(NOW) + 299)), BODY, NOW)


@pytest.mark.parametrize("skew", [301, -301])
def test_zendesk_refuses_a_timestamp_301_seconds_off_either_way(skew: int) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + skew))
    with pytest.raises(BadSignature, match="300 s"):
        verify_zendesk(SECRET, zendesk(stamp), BODY, NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-zendesk-webhook-signature": "AAAA"},
        {"x-zendesk-webhook-signature-timestamp": "2027-01-15T08:00:00", "x-zendesk-webhook-signature": "AAAA"},
        {"x-zendesk-webhook-signature-timestamp": str(int(NOW)), "x-zendesk-webhook-signature": "not base64!"},
    ],
)
def test_zendesk_refuses_missing_or_malformed_headers(headers: dict[str, str]) -> None:
    with pytest.raises(BadSignature):
        verify_zendesk(SECRET, headers, BODY, NOW)
