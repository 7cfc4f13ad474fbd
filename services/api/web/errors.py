"""Every error becomes `{"status": "<reason phrase>", "error": "<what went wrong>"}` with no internals."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from services.api.delivery.eventhandler_client import EventHandlerError, EventHandlerUnavailable
from services.api.incidents.domain import DomainError, IncidentDeleted
from services.api.incidents.events import EventTooLarge
from services.api.storage.db import DATA_TOO_LONG, UNAVAILABLE_ERRORS, VALUE_REFUSED_ERRORS
from services.api.storage.groupcommit import Overloaded
from services.api.storage.repository import (
    DedupKeyInUse,
    IdempotencyMismatch,
    NotFound,
    PreconditionFailed,
    VersionConflict,
)

log = structlog.get_logger(__name__)


class BadRequest(ValueError):
    """Bad input found by a handler (a path or query value)."""


TOO_DEEP = "request body is nested too deeply"


def is_too_deep(exc: BaseException) -> bool:
    """msgspec's own depth guard, met while decoding a body with a free-form (`Any`) field."""
    return isinstance(exc, RecursionError) and "deserializing" in str(exc)


def error_response(code: int, error: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        {"status": HTTPStatus(code).phrase, "error": error},
        status_code=code,
        media_type="application/json",
        headers=headers,
    )


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra
    if isinstance(extra, list) and extra:
        parts = []
        for item in extra:
            if isinstance(item, dict):
                message = str(item.get("message", "invalid value"))
                key = item.get("key")
                parts.append(f"{key}: {message}" if key and key not in message else message)
        if parts:
            return "; ".join(parts)
    detail = exc.detail or "invalid request"
    return "request body is not valid JSON" if "malformed" in detail.lower() else detail


def handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return error_response(400, _validation_message(exc))
    code = exc.status_code
    if code == 404:
        return error_response(404, "no such route")
    if code == 413:
        return error_response(413, "request body is too large")
    detail = exc.detail if exc.detail and exc.detail != HTTPStatus(code).phrase else HTTPStatus(code).description
    return error_response(code, detail or HTTPStatus(code).phrase, getattr(exc, "headers", None))


def handle_any(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    code, error, headers = error_of(exc)
    return error_response(code, error, headers)


def error_of(exc: Exception) -> tuple[int, str, dict[str, str] | None]:
    """The status, message and headers an exception answers with (logged where it says something)."""
    if isinstance(exc, NotFound | IncidentDeleted):
        return 404, "incident not found", None
    if isinstance(exc, EventTooLarge):
        return 413, str(exc), None
    if isinstance(exc, BadRequest | DomainError):
        return 400, str(exc), None
    if is_too_deep(exc):
        return 400, TOO_DEEP, None
    if isinstance(exc, PreconditionFailed):
        return 412, f"If-Match does not match: {exc}", {"ETag": f'"{exc.current}"'}
    if isinstance(exc, VersionConflict | IdempotencyMismatch | DedupKeyInUse):
        return 409, str(exc), None
    if isinstance(exc, EventHandlerError):
        return (exc.code if exc.code in (400, 404) else 503), exc.description, None
    if isinstance(exc, EventHandlerUnavailable):
        return 503, "event handler unavailable, try again later", {"Retry-After": "1"}
    if isinstance(exc, Overloaded):
        return 503, str(exc), {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, VALUE_REFUSED_ERRORS):
        log.warning("database refused a value", error=type(exc).__name__, code=exc.args[0] if exc.args else None)
        if exc.args and exc.args[0] == DATA_TOO_LONG:
            return 413, "a value is too long to store", None
        return 400, "a value can't be stored", None
    if isinstance(exc, UNAVAILABLE_ERRORS):
        log.warning("database unavailable", error=type(exc).__name__)
        return 503, "database unavailable, try again later", {"Retry-After": "1"}
    log.exception("unhandled error")
    return 500, "internal server error", None
