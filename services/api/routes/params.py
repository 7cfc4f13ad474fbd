"""Parsing of path, query and header values into domain values, with 400s that say what is wrong."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from services.api.errors import BadRequest
from services.api.events import Origin

MAX_ID = 2**63 - 1


def incident_id(raw: str) -> int:
    if not re.fullmatch(r"[0-9]+", raw):  # ASCII digits: "²" passes isdigit() but not int()
        raise BadRequest("incident id must be a positive integer")
    value = int(raw) if len(raw) <= 19 else 0  # more digits than any id, and than int() may take
    if value < 1 or value > MAX_ID:
        raise BadRequest("incident id is out of range")
    return value


def if_match(request: Request[Any, Any, Any]) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    raw = raw.strip().removeprefix("W/").strip('"')
    # ASCII digits only ("²" passes isdigit() but not int()), and few enough for int() and for an incident version.
    if not re.fullmatch(r"[0-9]{1,18}", raw):
        raise BadRequest('If-Match must be an incident version, e.g. "3"')
    return int(raw)


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key.strip() or len(key) > 255 or not key.isprintable():
        raise BadRequest("Idempotency-Key must be 1 to 255 printable characters")
    return key


def origin(request: Request[Any, Any, Any]) -> Origin:
    state = request.scope.get("state", {})
    return Origin(
        actor=state.get("actor", "anonymous"),
        request_id=state.get("request_id"),
        traceparent=state.get("traceparent"),
    )


def encode_cursor(last_id: int) -> str:
    """Keyset pagination: the cursor is the last id shown; the next page starts below it."""
    return str(last_id)


def decode_cursor(cursor: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", cursor) or not 0 < int(cursor) <= MAX_ID:
        raise BadRequest("cursor is not valid")
    return int(cursor)
