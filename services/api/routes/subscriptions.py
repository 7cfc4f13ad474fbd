"""Which events each worker receives: read and changed through the event handler."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, put

from services.api.errors import BadRequest
from services.api.eventhandler_client import EventHandlerClient
from services.api.schemas import SetSubscriptions
from shared import jetstream


class SubscriptionController(Controller):
    path = "/subscriptions"
    tags = ["subscriptions"]

    @get("/", summary="Every worker's subscribed event types")
    async def list_subscriptions(self, eventhandler: EventHandlerClient) -> dict[str, list[str]]:
        result: dict[str, list[str]] = await eventhandler.call(jetstream.SUBSCRIPTIONS_GET_SUBJECT, {})
        return result

    @put("/{worker:str}", summary="Set the event types a worker receives from now on")
    async def set_subscriptions(
        self, worker: str, data: SetSubscriptions, eventhandler: EventHandlerClient
    ) -> dict[str, Any]:
        if not jetstream.WORKER_NAME.match(worker):
            raise BadRequest("worker name must be lowercase letters, digits, - or _, at most 32 characters")
        unknown = sorted(set(data.events) - jetstream.valid_subjects())
        if unknown:
            raise BadRequest(f"unknown event type: {', '.join(unknown)}")
        request = {"worker": worker, "events": sorted(set(data.events)), "start": data.start}
        result: dict[str, Any] = await eventhandler.call(jetstream.SUBSCRIPTIONS_SET_SUBJECT, request)
        return result
