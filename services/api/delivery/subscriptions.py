"""Which events each worker receives: read and changed through the event handler."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, get, put
from litestar.params import Parameter

from services.api.delivery.eventhandler_client import EventHandlerClient
from services.api.web.bodies import Body, EventSubject
from services.api.web.errors import BadRequest
from services.api.web.openapi import ERRORS
from shared import jetstream


class SetSubscriptions(Body):
    events: list[EventSubject]
    start: Literal["now", "all"] | None = None
    """(Re)create the consumer from `now` or from `all` history; omit to keep its position."""
    since: datetime | None = None
    """(Re)create the consumer to replay history from this RFC 3339 time; takes precedence over `start`."""


class SubscriptionController(Controller):
    path = "/subscriptions"
    tags = ["subscriptions"]

    @get("/", summary="Every worker's subscribed event types", responses=ERRORS)
    async def list_subscriptions(self, eventhandler: EventHandlerClient) -> dict[str, list[str]]:
        result: dict[str, list[str]] = await eventhandler.call(jetstream.SUBSCRIPTIONS_GET_SUBJECT, {})
        return result

    @put("/{worker:str}", summary="Set the event types a worker receives from now on", responses=ERRORS)
    async def set_subscriptions(
        self,
        worker: Annotated[str, Parameter(pattern=jetstream.WORKER_NAME.pattern, description="The worker's name")],
        data: SetSubscriptions,
        eventhandler: EventHandlerClient,
    ) -> dict[str, Any]:
        if data.since is not None and data.since.tzinfo is None:
            raise BadRequest("since must be an RFC 3339 time with a time zone")
        start = data.since.isoformat() if data.since is not None else data.start
        request = {"worker": worker, "events": sorted(set(data.events)), "start": start}
        result: dict[str, Any] = await eventhandler.call(jetstream.SUBSCRIPTIONS_SET_SUBJECT, request)
        return result
