"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per active secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

from shared.webhooks import secret_key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: space-separated entries, so receivers accept any one secret."""
    return " ".join(signature(secret, msg_id, timestamp, body) for secret in secrets)
