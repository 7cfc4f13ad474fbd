"""A JetStream publisher that pipelines acks on one inbox subscription, as publish_async does."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header
from nats.js.errors import APIError, NoStreamResponseError

from shared.events import STREAM

NO_RESPONDERS = "503"


class _Ack(msgspec.Struct):
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


class JetStreamPublisher:
    """Implements publishing.Publisher on a NATS connection.

    Not nats-py's publish_async: its future never resolves when JetStream answers with an error
    (nats-io/nats.py#985). Not `js.publish`: a timer and a task switch per message made it about 40%
    slower here. Callers bound each wait themselves (BatchPublisher's deadline).
    """

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""
        self._tokens = itertools.count()
        self._pending: dict[str, asyncio.Future[Msg]] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox()
        self._subscription = await self._nc.subscribe(self._prefix + ".*", cb=self._on_ack)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_ack(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix) + 1 :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> bool:
        token = str(next(self._tokens))
        future = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            await self._nc.publish(
                subject, payload, reply=f"{self._prefix}.{token}", headers={**headers, Header.EXPECTED_STREAM: STREAM}
            )
            msg = await future
        finally:
            self._pending.pop(token, None)
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS:
            raise NoStreamResponseError
        ack = msgspec.json.decode(msg.data, type=_Ack)
        if ack.error is not None:
            APIError.from_error(ack.error)  # raises the matching APIError subclass
        return ack.duplicate
