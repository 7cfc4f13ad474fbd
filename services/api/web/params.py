"""Parsing of path, query and header values into domain values, with 400s that say what is wrong."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from services.api.incidents.events import Origin
from services.api.web.errors import BadRequest

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
    return idempotency_key_of(request.headers.get("idempotency-key"))


def idempotency_key_of(key: str | None) -> str | None:
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


def encode_cursor(last_id: int, rank: int | None = None, acknowledged: str = "") -> str:
    """Keyset pagination: the last id shown (after its severity rank and acknowledgement in triage order)."""
    return str(last_id) if rank is None else f"{rank}.{acknowledged}.{last_id}"


RANKED_CURSOR = re.compile(r"^([0-4])\.(yes|no)\.([1-9][0-9]{0,18})$")


def decode_cursor(cursor: str, *, ranked: bool = False) -> tuple[int | None, str | None, int]:
    """(rank, acknowledged, id) of a cursor; rank and acknowledged only in triage order."""
    if ranked:
        match = RANKED_CURSOR.match(cursor)
        if match is None or int(match[3]) > MAX_ID:
            raise BadRequest("cursor is not valid for this sort order")
        return int(match[1]), match[2], int(match[3])
    if not re.fullmatch(r"[0-9]{1,19}", cursor) or not 0 < int(cursor) <= MAX_ID:
        raise BadRequest("cursor is not valid")
    return None, None, int(cursor)


LIST_PARAMETERS = frozenset(
    {"status", "acknowledged", "severity", "source", "dedup_key", "q", "sort", "limit", "cursor"}
)
LABEL_PREFIX = "labels."
MAX_LABEL_FILTERS = 10


def list_query(request: Request[Any, Any, Any]) -> tuple[tuple[str, str], ...]:
    """Checks the list's query parameters by name (an unknown one is a 400) and returns its label filters."""
    labels: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in LIST_PARAMETERS:
            continue
        if not name.startswith(LABEL_PREFIX):
            raise BadRequest(f"unknown query parameter {name!r}")
        label = name.removeprefix(LABEL_PREFIX)
        if not label or len(label) > 255 or not label.isprintable() or '"' in label or "\\" in label:
            raise BadRequest(f"label name in {name!r} is not valid")
        if label in labels and labels[label] != value:
            raise BadRequest(f"{name} is given twice with different values")
        labels[label] = value
    if len(labels) > MAX_LABEL_FILTERS:
        raise BadRequest(f"at most {MAX_LABEL_FILTERS} label filters")
    return tuple(sorted(labels.items()))
