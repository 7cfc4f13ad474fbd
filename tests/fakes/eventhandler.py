"""An older event handler, as met during a rolling upgrade: it does not know some event types yet.

It serves `eventhandler.publish` on a real nats-server with the shared relay contract and stores the
events it knows on the real INCIDENTS stream through the event handler's own BatchPublisher. An event
of a type it does not know is answered "rejected", and that incident's later events in the request
are "failed, not attempted" (the contract: nothing of an incident is stored past a rejected event).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from nats import micro
from nats.aio.client import Client
from nats.micro.request import Request
from nats.micro.service import Service

from services.eventhandler.metrics import Metrics
from services.eventhandler.pipeline import JetStreamPublisher
from services.eventhandler.publishing import BatchPublisher
from services.eventhandler.streams import ensure_streams
from shared.jetstream import EVENTHANDLER_SERVICE
from shared.relay import EventError, PublishReply, PublishRequest


class _Head(msgspec.Struct):
    id: str = ""
    type: str = ""
    subject: str = ""


class OlderEventHandler:
    def __init__(self, nc: Client, unknown_types: set[str]) -> None:
        self._nc = nc
        self._unknown = unknown_types
        self._jetstream = JetStreamPublisher(nc)
        self._batch = BatchPublisher(self._jetstream, Metrics())
        self._service: Service | None = None
        self.requests = 0

    async def start(self) -> OlderEventHandler:
        await ensure_streams(self._nc.jetstream(), 1)
        await self._jetstream.start()
        self._service = await micro.add_service(self._nc, name=EVENTHANDLER_SERVICE, version="0.0.9")
        group = self._service.add_group(name="eventhandler")
        await group.add_endpoint(name="publish", subject="publish", handler=self._publish)
        return self

    async def stop(self) -> None:
        if self._service is not None:
            await self._service.stop()
        await self._jetstream.stop()

    async def _publish(self, request: Request) -> None:
        self.requests += 1
        events = msgspec.json.decode(request.data, type=PublishRequest).events
        rejected: list[EventError] = []
        failed: list[EventError] = []
        halted: dict[str, str] = {}
        known: list[Any] = []
        for raw in events:
            head = msgspec.json.decode(raw, type=_Head)
            if head.subject in halted:
                failed.append(EventError(id=head.id, error=f"not attempted: {halted[head.subject]} was rejected"))
            elif head.type in self._unknown:
                rejected.append(EventError(id=head.id, error=f"unknown event type: {head.type}"))
                halted[head.subject] = head.id
            else:
                known.append(raw)
        stored = await self._batch.publish(known)
        reply = PublishReply(
            stored=stored.stored, failed=[*failed, *stored.failed], rejected=[*rejected, *stored.rejected]
        )
        await request.respond(msgspec.json.encode(reply))


class HeldEventHandler(OlderEventHandler):
    """An event handler that, while held, keeps each request unanswered until `release()`.

    It places a fault at a known point of the relay: while a request waits here, the relay holds its claim
    (a transaction on MySQL) across the round trip.
    """

    def __init__(self, nc: Client) -> None:
        super().__init__(nc, unknown_types=set())
        self.waiting = 0
        self._open = asyncio.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def start(self) -> HeldEventHandler:
        await super().start()
        return self

    async def _publish(self, request: Request) -> None:
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1
        await super()._publish(request)
