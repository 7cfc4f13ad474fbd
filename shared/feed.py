"""Reading a feed: a push consumer the event handler made for us (shared/consumers.py), into our own inbox.

Its flow control and heartbeats are answered here, in order, as the messages are read. A message lost on the
way (the client dropped it as a slow consumer) shows as a gap in the consumer sequence: `FeedGap`, and the
reader opens a new feed from where it was.
"""

from __future__ import annotations

import contextlib
import time

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared.consumers import (
    FEED_HEARTBEAT_SECONDS,
    FeedCloseRequest,
    FeedReply,
    FeedRequest,
    feed_close_subject,
    feed_open_subject,
)

REQUEST_TIMEOUT = 5.0
SILENT_AFTER_SECONDS = 3 * FEED_HEARTBEAT_SECONDS
_CONTROL = "100"
_STALLED = "Nats-Consumer-Stalled"
_ERROR_CODE = "Nats-Service-Error-Code"
_ERROR = "Nats-Service-Error"


class FeedUnavailable(nats.errors.Error):
    """The event handler did not make (or delete) the consumer: down, refused, or NATS not connected.
    A NATS error, so that whoever retries NATS trouble retries this too."""


class FeedGap(RuntimeError):
    """A message of the feed was lost: open a new one from the last message handled."""


async def consumer_request(nc: Client, subject: str, body: bytes) -> bytes:
    try:
        reply = await nc.request(subject, body, timeout=REQUEST_TIMEOUT)
    except (nats.errors.Error, TimeoutError) as exc:
        raise FeedUnavailable(f"the event handler did not answer: {type(exc).__name__}") from None
    headers = reply.headers or {}
    if headers.get(_ERROR_CODE):
        raise FeedUnavailable(f"the event handler refused: {headers.get(_ERROR, headers[_ERROR_CODE])}")
    return bytes(reply.data)


class Feed:
    def __init__(self, nc: Client, user: str, subscription: Subscription, name: str) -> None:
        self.nc = nc
        self.user = user
        self.name = name
        self._subscription = subscription
        self._next_delivery = 1
        self._last_heard = time.monotonic()

    @classmethod
    async def open(cls, nc: Client, user: str, start_seq: int = 0) -> Feed:
        inbox = nc.new_inbox()
        subscription = await nc.subscribe(inbox)
        try:
            body = msgspec.json.encode(FeedRequest(inbox, start_seq))
            raw = await consumer_request(nc, feed_open_subject(user), body)
            reply = msgspec.json.decode(raw, type=FeedReply)
        except BaseException:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
            raise
        return cls(nc, user, subscription, reply.name)

    async def next(self, timeout: float) -> Msg | None:
        """The next message, or None when none came within `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self._subscription.next_msg(timeout=left)
            except nats.errors.TimeoutError:
                if time.monotonic() - self._last_heard > SILENT_AFTER_SECONDS:
                    # Not even a heartbeat: the consumer is gone (an in-memory one does not outlive its server).
                    raise FeedGap(f"nothing heard for {SILENT_AFTER_SECONDS} s") from None
                return None
            self._last_heard = time.monotonic()
            headers = msg.headers or {}
            if not msg.data and headers.get("Status") == _CONTROL:
                # Flow control asks for an empty reply; a heartbeat of a stalled consumer names where to send one.
                resume = msg.reply or headers.get(_STALLED)
                if resume:
                    await self.nc.publish(resume)
                continue
            delivered = msg.metadata.sequence.consumer
            if delivered != self._next_delivery:
                raise FeedGap(f"expected delivery {self._next_delivery}, got {delivered}")
            self._next_delivery = delivered + 1
            return msg
        return None

    async def close(self) -> None:
        """Stop reading and have the event handler delete the consumer (JetStream would, after a while)."""
        with contextlib.suppress(nats.errors.Error):
            await self._subscription.unsubscribe()
        with contextlib.suppress(FeedUnavailable):
            body = msgspec.json.encode(FeedCloseRequest(self.name))
            await consumer_request(self.nc, feed_close_subject(self.user), body)
