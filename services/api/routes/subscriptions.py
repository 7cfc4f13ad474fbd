"""Which events each worker receives: read and changed through the event handler."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, put
from litestar.params import Parameter

from services.api.errors import BadRequest
from services.api.eventhandler_client import EventHandlerClient
from services.api.routes.openapi import ERRORS
from services.api.schemas import SetSubscriptions
from shared import jetstream


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
