"""The vendors' request signatures, checked in constant time against the raw body. No I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from shared.twoway import (
    JIRA_SIGNATURE_HEADER,
    SIGNATURE_WINDOW_SECONDS,
    SLACK_SIGNATURE_HEADER,
    SLACK_TIMESTAMP_HEADER,
    ZENDESK_SIGNATURE_HEADER,
    ZENDESK_TIMESTAMP_HEADER,
)

JIRA_METHODS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}


class BadSignature(ValueError):
    """A missing, malformed or wrong signature, or a timestamp outside the window: answered 401."""


def _timestamp(raw: str | None, now: float) -> int:
    if raw is None or not raw.strip():
        raise BadSignature("missing signature timestamp")
    raw = raw.strip()
    if not raw.isdigit() or not raw.isascii() or len(raw) > 12:
        raise BadSignature("malformed signature timestamp")
    stamp = int(raw)
    if abs(now - stamp) > SIGNATURE_WINDOW_SECONDS:
        raise BadSignature(f"signature timestamp is more than {SIGNATURE_WINDOW_SECONDS} s from now")
    return stamp


def verify_slack(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """`X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>`, timestamp within 300 s."""
    stamp = _timestamp(headers.get(SLACK_TIMESTAMP_HEADER), now)
    signature = headers.get(SLACK_SIGNATURE_HEADER)
    if not signature:
        raise BadSignature("missing X-Slack-Signature")
    expected = "v0=" + hmac.new(secret, b"v0:%d:" % stamp + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise BadSignature("X-Slack-Signature does not match")


def verify_jira(secret: bytes, headers: Mapping[str, str], body: bytes) -> None:
    """`X-Hub-Signature: <method>=<hex HMAC(secret, body)>`; the method is read, not assumed."""
    signature = headers.get(JIRA_SIGNATURE_HEADER)
    if not signature:
        raise BadSignature("missing X-Hub-Signature")
    method, sep, digest = signature.strip().partition("=")
    algorithm = JIRA_METHODS.get(method.lower())
    if not sep or algorithm is None:
        raise BadSignature("X-Hub-Signature must be <method>=<hex digest> with sha256, sha1 or sha512")
    expected = hmac.new(secret, body, algorithm).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.lower().encode("utf-8", "replace")):
        raise BadSignature("X-Hub-Signature does not match")


def verify_zendesk(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """`X-Zendesk-Webhook-Signature: base64(HMAC-SHA256(secret, timestamp + body))`, timestamp within 300 s."""
    raw_stamp = headers.get(ZENDESK_TIMESTAMP_HEADER)
    signature = headers.get(ZENDESK_SIGNATURE_HEADER)
    if not signature:
        raise BadSignature("missing X-Zendesk-Webhook-Signature")
    if raw_stamp is None:
        raise BadSignature("missing X-Zendesk-Webhook-Signature-Timestamp")
    _zendesk_time(raw_stamp, now)
    try:
        presented = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("X-Zendesk-Webhook-Signature is not base64") from None
    expected = hmac.new(secret, raw_stamp.encode("utf-8", "replace") + body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, presented):
        raise BadSignature("X-Zendesk-Webhook-Signature does not match")


def _zendesk_time(raw: str, now: float) -> None:
    """Zendesk signs an ISO 8601 time (`2026-12-05T04:30:00Z`); unix seconds are taken too."""
    text = raw.strip()
    if text.isdigit():
        _timestamp(text, now)
        return
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadSignature("malformed signature timestamp") from None
    if stamp.tzinfo is None:
        raise BadSignature("signature timestamp has no time zone")
    if abs(now - stamp.timestamp()) > SIGNATURE_WINDOW_SECONDS:
        raise BadSignature(f"signature timestamp is more than {SIGNATURE_WINDOW_SECONDS} s from now")
