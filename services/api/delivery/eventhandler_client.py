"""The API's side of NATS: a connection that may come later, and request-reply calls to the event handler."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
import structlog
from nats.aio.client import Client
from nats.errors import ConnectionClosedError, MaxPayloadError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError

from shared import jetstream, tracing
from shared.natsconn import NatsSettings, connect
from shared.relay import PublishReply, encode_request

log = structlog.get_logger(__name__)

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"


class _Traced(msgspec.Struct):
    traceparent: str | None = None


_traced = msgspec.json.Decoder(_Traced)


def _traceparents(payloads: list[bytes]) -> list[str | None]:
    found = []
    for payload in payloads:
        try:
            found.append(_traced.decode(payload).traceparent)
        except msgspec.DecodeError:
            found.append(None)
    return found


class EventHandlerUnavailable(RuntimeError):
    """NATS or the event handler did not answer: retry later."""


class EventHandlerError(RuntimeError):
    """The event handler refused a request (a micro service error reply), or NATS could not carry it (413)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class NatsLink:
    """Keeps trying to connect in the background: the API serves writes while NATS is down."""

    def __init__(self, settings: NatsSettings, name: str = "api") -> None:
        self.settings = settings
        self.name = name
        self.nc: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="nats-connect")

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            try:
                self.nc = await connect(self.settings, self.name, inbox="api")
                self._connected.set()
                log.info("nats connected", servers=self.settings.servers)
                return
            except (NoServersError, OSError, TimeoutError, NatsTimeoutError) as exc:
                log.warning("nats not reachable yet", error=str(exc) or type(exc).__name__, retry_in=delay)
            except Exception:  # whatever it is, the API must not stay without NATS until a restart
                log.exception("nats connect failed unexpectedly, will retry", retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.connected

    async def close(self) -> None:
        if self._task and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5)

    async def request(
        self, subject: str, payload: bytes, timeout: float, headers: dict[str, str] | None = None
    ) -> bytes:
        if not self.connected or self.nc is None:
            raise EventHandlerUnavailable("NATS is not connected")
        try:
            reply = await self.nc.request(subject, payload, timeout=timeout, headers=headers)
        except (NoRespondersError, NatsTimeoutError, TimeoutError, ConnectionClosedError) as exc:
            raise EventHandlerUnavailable(f"event handler did not answer: {type(exc).__name__}") from exc
        except MaxPayloadError as exc:
            limit = self.nc.max_payload
            raise EventHandlerError(413, f"request of {len(payload)} bytes exceeds NATS max_payload {limit}") from exc
        code = (reply.headers or {}).get(ERROR_CODE_HEADER)
        if code:
            description = (reply.headers or {}).get(ERROR_HEADER, "event handler error")
            raise EventHandlerError(int(code) if code.isdigit() else 500, description)
        return bytes(reply.data)


class EventHandlerClient:
    """Typed calls to the `eventhandler` micro service."""

    def __init__(self, link: NatsLink, timeout: float = 5.0) -> None:
        self.link = link
        self.timeout = timeout

    async def publish(self, payloads: list[bytes], headers: dict[str, str] | None = None) -> PublishReply:
        body = encode_request(payloads)
        if not tracing.recording():
            raw = await self.link.request(jetstream.PUBLISH_SUBJECT, body, self.timeout, headers)
            return msgspec.json.decode(raw, type=PublishReply)
        # One span per request of the relay, linked to the trace of each event it carries (a batch send).
        links = [link for link in map(tracing.link_to, _traceparents(payloads)) if link is not None]
        with tracing.tracer().start_as_current_span(
            "outbox relay",
            kind=tracing.SpanKind.PRODUCER,
            links=links,
            attributes={"messaging.system": "nats", "messaging.batch.message_count": len(payloads)},
        ) as span:
            raw = await self.link.request(
                jetstream.PUBLISH_SUBJECT, body, self.timeout, tracing.inject(dict(headers or {}))
            )
            reply = msgspec.json.decode(raw, type=PublishReply)
            span.set_attribute("incidents.events_stored", len(reply.stored))
            return reply

    async def call(self, subject: str, request: Any) -> Any:
        raw = await self.link.request(subject, msgspec.json.encode(request), self.timeout)
        return msgspec.json.decode(raw)
