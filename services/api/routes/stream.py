"""`GET /incident/stream`: incident events as server-sent events, for the web console."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import ServerSentEvent

from services.api.live import LiveFeed, parse_last_event_id


# Left out of the OpenAPI schema: an endless response has no schema, and a fuzzer would wait on it forever.
@get("/incident/stream", include_in_schema=False)
async def incident_stream(request: Request[Any, Any, Any], live_feed: LiveFeed) -> ServerSentEvent:
    """Every incident event from now on (or after `Last-Event-ID`); `id` is the event's stream sequence."""
    messages = await live_feed.open(parse_last_event_id(request.headers.get("last-event-id")))
    return ServerSentEvent(messages)
