"""The console's live feed: incident events read from JetStream, sent to the browser as server-sent events.

Each stream reads its own ordered (ephemeral, in-memory) consumer on INCIDENTS, so a browser that
reconnects with `Last-Event-ID` (the stream sequence of the last event it saw) catches up exactly.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncGenerator

import msgspec
import structlog
from litestar.response import ServerSentEventMessage
from nats.errors import ConnectionClosedError
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.api.errors import BadRequest
from services.api.eventhandler_client import EventHandlerUnavailable, NatsLink
from shared.events import STREAM, SUBJECT_PREFIX

log = structlog.get_logger(__name__)

KEEPALIVE_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""
WAKE_SECONDS = 1.0
"""How soon an idle stream notices that the API is shutting down."""
RETRY_MILLISECONDS = 2000
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


class LiveFeed:
    def __init__(self, link: NatsLink, catchup_max: int) -> None:
        self.link = link
        self.catchup_max = catchup_max
        self.closing = False

    def close(self) -> None:
        """End every open stream (browsers reconnect to another replica). Safe to call from a signal handler."""
        self.closing = True

    def _jetstream(self) -> JetStreamContext:
        if not self.link.connected or self.link.nc is None:
            raise EventHandlerUnavailable("NATS is not connected")
        return self.link.nc.jetstream(timeout=5)

    async def open(self, last_seen: int | None) -> AsyncGenerator[ServerSentEventMessage, None]:
        """The stream's messages; a 503 now when NATS is down."""
        return self._messages(self._jetstream(), last_seen)

    async def _messages(
        self, js: JetStreamContext, last_seen: int | None
    ) -> AsyncGenerator[ServerSentEventMessage, None]:
        # Subscribed inside the generator, so that its `finally` always runs: a browser that hangs up
        # before the response starts leaves no consumer behind. Subscribed before `ready` is sent, so
        # nothing after it is missed.
        try:
            info = await js.stream_info(STREAM)
            start = start_after(last_seen, info.state.last_seq, self.catchup_max)
            subscription = await js.subscribe(
                SUBJECT_PREFIX + ">",
                stream=STREAM,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start.first_seq),
            )
        except (NatsError, TimeoutError) as exc:
            log.warning("live stream unavailable", error=type(exc).__name__)
            return  # the browser reconnects
        log.info("live stream opened", first_seq=start.first_seq, reset=start.reset)
        ready = msgspec.json.encode({"reset": start.reset}).decode()
        try:
            yield ServerSentEventMessage(event=READY, id=str(start.first_seq - 1), data=ready, retry=RETRY_MILLISECONDS)
            quiet_since = time.monotonic()
            while not self.closing:
                try:
                    msg = await subscription.next_msg(timeout=WAKE_SECONDS)
                except NatsTimeoutError:
                    if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                        quiet_since = time.monotonic()
                        yield ServerSentEventMessage(comment="keep-alive")
                    continue
                except ConnectionClosedError:
                    return
                quiet_since = time.monotonic()
                # JSON outside strings may hold line breaks; inside strings they are escaped. SSE data is one line.
                data = msg.data.replace(b"\r", b"").replace(b"\n", b"").decode()
                yield ServerSentEventMessage(event=EVENT, id=str(msg.metadata.sequence.stream), data=data)
        finally:
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()
            log.info("live stream closed")
