"""`GET /incident/stream`: incident events as server-sent events, for the web console."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.response import ServerSentEvent

from services.api.console.live import LiveFeed, TooManyStreams, parse_last_event_id
from services.api.web.errors import error_response


def _too_many(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    retry_after = exc.retry_after if isinstance(exc, TooManyStreams) else 5
    return error_response(429, str(exc), {"Retry-After": str(retry_after)})


# Left out of the OpenAPI schema: an endless response has no schema, and a fuzzer would wait on it forever.
@get("/incident/stream", include_in_schema=False, exception_handlers={TooManyStreams: _too_many})
async def incident_stream(request: Request[Any, Any, Any], live_feed: LiveFeed) -> ServerSentEvent:
    """Every incident event from now on (or after `Last-Event-ID`); `id` is the event's stream sequence.
    Capped per token (STREAM_MAX_PER_TOKEN) and in total (STREAM_MAX): past a cap, 429 with Retry-After."""
    actor = str(request.scope.get("state", {}).get("actor", "anonymous"))
    messages = await live_feed.open(actor, parse_last_event_id(request.headers.get("last-event-id")))
    return ServerSentEvent(messages)
