"""The console's live feed: incident events read from JetStream, sent to the browser as server-sent events.

Each stream reads its own push consumer on INCIDENTS (ack-less, in memory, into the API's inbox), which the
event handler creates for it (shared/consumers.py), so a browser that reconnects with `Last-Event-ID` (the
stream sequence of the last event it saw) catches up exactly.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections import Counter
from collections.abc import AsyncGenerator

import msgspec
import structlog
from litestar.response import ServerSentEventMessage
from nats.aio.client import Client
from nats.errors import ConnectionClosedError
from nats.errors import Error as NatsError

from services.api.delivery.eventhandler_client import EventHandlerUnavailable, NatsLink
from services.api.web.errors import BadRequest
from shared.events import STREAM
from shared.feed import Feed, FeedGap, FeedUnavailable

log = structlog.get_logger(__name__)

KEEPALIVE_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""
WAKE_SECONDS = 1.0
"""How soon an idle stream notices that the API is shutting down."""
RETRY_MILLISECONDS = 2000
RETRY_AFTER_SECONDS = 5
DEFAULT_MAX_PER_TOKEN = 20
"""STREAM_MAX_PER_TOKEN: a responder has a few tabs open; more from one token is a runaway script or worse."""
DEFAULT_MAX = 500
"""STREAM_MAX: open streams of one API process."""
FEED_USER = "api"
SEQUENCE = r"[0-9]{1,20}"
"""A stream sequence (a uint64) as ASCII digits: bounded, so int() never meets Python's digit limit."""
EVENT = "incident"
READY = "ready"


class Start(msgspec.Struct, frozen=True):
    """Where a stream starts: the first stream sequence to send, and whether the browser must reload."""

    first_seq: int
    reset: bool


def start_after(last_seen: int | None, last_seq: int, catchup_max: int) -> Start:
    """Catch up from `last_seen` when it is recent enough; else start now and tell the browser to reload."""
    if last_seen is None:
        return Start(last_seq + 1, reset=False)
    if last_seen > last_seq or last_seq - last_seen > catchup_max:
        return Start(last_seq + 1, reset=True)
    return Start(last_seen + 1, reset=False)


def parse_last_event_id(raw: str | None) -> int | None:
    """The stream sequence a browser saw last (an id this stream sent it); anything else is a 400."""
    if raw is None or not raw.strip():
        return None
    if not re.fullmatch(SEQUENCE, raw.strip()):
        raise BadRequest("Last-Event-ID must be an event id this stream sent, e.g. 42")
    return int(raw.strip())


class TooManyStreams(RuntimeError):
    """A cap on open streams is reached: 429 with Retry-After."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = RETRY_AFTER_SECONDS


class StreamCaps:
    """Open streams per token and in total. Taken before the answer starts, given back when the stream ends."""

    def __init__(self, per_token: int, total: int) -> None:
        self.per_token = per_token
        self.total = total
        self.open: Counter[str] = Counter()

    def take(self, actor: str) -> None:
        if sum(self.open.values()) >= self.total:
            raise TooManyStreams(f"too many open streams ({self.total}, STREAM_MAX); retry later")
        if self.open[actor] >= self.per_token:
            raise TooManyStreams(f"too many open streams for this token ({self.per_token}, STREAM_MAX_PER_TOKEN)")
        self.open[actor] += 1

    def give_back(self, actor: str) -> None:
        self.open[actor] -= 1
        if self.open[actor] <= 0:
            del self.open[actor]


class _Slot:
    """One open stream's place under the caps, given back once."""

    __slots__ = ("actor", "caps", "held")

    def __init__(self, caps: StreamCaps, actor: str) -> None:
        caps.take(actor)
        self.caps, self.actor, self.held = caps, actor, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.caps.give_back(self.actor)


class LiveFeed:
    """The console's streams, on a NATS connection of their own: a browser that reads slowly (or a replay of
    large events) can make NATS drop this connection as a slow consumer, never the outbox relay's."""

    def __init__(self, link: NatsLink, catchup_max: int, caps: StreamCaps | None = None) -> None:
        self.link = link
        self.catchup_max = catchup_max
        self.caps = caps or StreamCaps(per_token=DEFAULT_MAX_PER_TOKEN, total=DEFAULT_MAX)
        self.closing = False
        self._closing: set[asyncio.Future[None]] = set()

    def close(self) -> None:
        """End every open stream (browsers reconnect to another replica). Safe to call from a signal handler."""
        self.closing = True

    async def open(self, actor: str, last_seen: int | None) -> AsyncGenerator[ServerSentEventMessage, None]:
        """The stream's messages; TooManyStreams past a cap, a 503 now when NATS is down."""
        if not self.link.connected or self.link.nc is None:
            raise EventHandlerUnavailable("NATS is not connected")
        slot = _Slot(self.caps, actor)  # no await between the check and the count: the cap holds under any concurrency
        messages = self._messages(self.link.nc, slot, last_seen)
        # The generator gives its slot back in its `finally`; one the response never started (a browser that hung
        # up at once) has no `finally` to run, so it gives the slot back when it is collected. It is not started
        # here: one started in the handler's task is not cancelled when the browser hangs up.
        weakref.finalize(messages, slot.release)
        return messages

    async def _messages(
        self, nc: Client, slot: _Slot, last_seen: int | None
    ) -> AsyncGenerator[ServerSentEventMessage, None]:
        feed: Feed | None = None
        try:
            # The consumer is made before `ready` is sent, so nothing after it is missed.
            try:
                info = await nc.jetstream(timeout=5).stream_info(STREAM)
                start = start_after(last_seen, info.state.last_seq, self.catchup_max)
                feed = await Feed.open(nc, FEED_USER, start.first_seq)
            except (NatsError, TimeoutError, FeedUnavailable) as exc:
                log.warning("live stream unavailable", error=type(exc).__name__)
                return
            log.info("live stream opened", first_seq=start.first_seq, reset=start.reset, consumer=feed.name)
            ready = msgspec.json.encode({"reset": start.reset}).decode()
            yield ServerSentEventMessage(event=READY, id=str(start.first_seq - 1), data=ready, retry=RETRY_MILLISECONDS)
            quiet_since = time.monotonic()
            while not self.closing:
                try:
                    msg = await feed.next(timeout=WAKE_SECONDS)
                except (ConnectionClosedError, FeedGap) as exc:
                    log.info("live stream ends, the browser resumes it", why=type(exc).__name__)
                    return
                if msg is None:
                    if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                        quiet_since = time.monotonic()
                        yield ServerSentEventMessage(comment="keep-alive")
                    continue
                quiet_since = time.monotonic()
                # JSON outside strings may hold line breaks; inside strings they are escaped. SSE data is one line.
                data = msg.data.replace(b"\r", b"").replace(b"\n", b"").decode()
                yield ServerSentEventMessage(event=EVENT, id=str(msg.metadata.sequence.stream), data=data)
        finally:
            slot.release()
            if feed is not None:
                # A browser that hangs up cancels this task: the close must still reach the event handler,
                # or the consumer lingers until JetStream's inactivity threshold.
                closing = asyncio.ensure_future(feed.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
                await asyncio.shield(closing)
            log.info("live stream closed")
