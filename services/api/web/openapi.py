"""The error responses every route documents, all in the contract's error shape."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from services.api.web.bodies import ErrorResponse

ERRORS: dict[int, ResponseSpec] = {
    code: ResponseSpec(ErrorResponse, description=description, generate_examples=False)
    for code, description in {
        400: "Bad input: bad JSON, wrong types, unknown values or fields, bad id",
        401: "Missing or invalid bearer token (when API_TOKENS is set)",
        404: "Incident not found; for subscriptions, a worker that is not known (the error lists the known ones)",
        409: "Conflict: too many concurrent changes, an Idempotency-Key reused for another request, "
        "or a dedup_key another open incident holds",
        412: "If-Match names a version the incident no longer has",
        413: "Request body too large, or the change would make the incident's event too large to deliver",
        503: "Database or event handler unavailable; retry later",
    }.items()
}
