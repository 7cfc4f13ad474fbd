"""The alert routes without Litestar's request machinery: an alert storm is thousands of small, well-formed
notifications a second, and a bare Litestar request costs about as much CPU as the repeat it carries.

The app (services/api/app.py) hands `POST /integrations/alertmanager` and `POST /v2/enqueue` to
`AlertFastPath` before Litestar sees them. It reads the body (within the size limit), authenticates (bearer
token; routing_key), decodes it into the routes' own structs and calls the routes' own functions, doing itself
what the middleware does for every other route: request id, trace context, access log, HTTP metrics (uvicorn's
concurrency cap is in front of both). A request it would answer with a 4xx before reaching the intake (no or a
wrong token, a body too large, not JSON, wrong types, an unknown routing_key, a blank key) goes, body
replayed, through the full Litestar route instead: one code path makes every refusal, so the answers and
their shapes are the routes'. With tracing on, every request takes the full route (its server span).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
import structlog
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    LifeSpanScope,
    Receive,
    Scope,
    Send,
)

from services.api.alerts import alertmanager, pagerduty
from services.api.alerts.routes import accept_event, accept_notification
from services.api.alerts.service import AlertIntake
from services.api.incidents.domain import DomainError
from services.api.incidents.events import Origin
from services.api.settings import ApiToken
from services.api.web.errors import TOO_DEEP, error_of, is_too_deep
from services.api.web.middleware import authenticate, request_id_of, traceparent_of
from shared import tracing

log = structlog.get_logger("api.access")

ALERTMANAGER_PATH = "/integrations/alertmanager"
ENQUEUE_PATH = "/v2/enqueue"
_NOTIFICATION = msgspec.json.Decoder(alertmanager.Notification)
_EVENT = msgspec.json.Decoder(pagerduty.PagerDutyEvent)
_ENCODER = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


FastRoute = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]
"""Serves one request; the ASGI app it is given answers whatever the route would refuse."""
Apply = Callable[[Origin], Awaitable[Answer]]
"""A request that passed every check the route makes before the intake: applying it is all that is left."""


class AlertFastPath:
    """Answers the two alert routes in front of the app; `route_of` says which requests it takes."""

    def __init__(
        self,
        *,
        intake: AlertIntake,
        routing_keys: pagerduty.RoutingKeys,
        tokens: tuple[ApiToken, ...],
        max_body_bytes: int,
        prometheus: PrometheusConfig,
    ) -> None:
        self.intake = intake
        self.routing_keys = routing_keys
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.metrics = HttpMetrics(prometheus)
        self._routes = {
            path: route
            for template, route in ((ALERTMANAGER_PATH, self._alertmanager), (ENQUEUE_PATH, self._enqueue))
            for path in (template, template + "/")
        }

    def route_of(self, scope: Scope | LifeSpanScope) -> FastRoute | None:
        if scope["type"] != "http" or scope.get("method") != "POST" or tracing.recording():
            return None
        return self._routes.get(scope["path"])

    async def _alertmanager(self, scope: Scope, receive: Receive, send: Send, full: ASGIApp) -> None:
        await self._serve(scope, receive, send, full, ALERTMANAGER_PATH, self._notification, bearer=True)

    async def _enqueue(self, scope: Scope, receive: Receive, send: Send, full: ASGIApp) -> None:
        await self._serve(scope, receive, send, full, ENQUEUE_PATH, self._event, bearer=False)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        full: ASGIApp,
        template: str,
        prepare: Callable[[bytes], Apply | None],
        *,
        bearer: bool,
    ) -> None:
        headers = _headers(scope)
        actor = "anonymous"
        if bearer and self.tokens:
            found = authenticate(self.tokens, headers.get(b"authorization"))
            if found is None:
                await full(scope, receive, send)  # the middleware answers 401
                return
            actor = found
        body, consumed = await _read_body(receive, self.max_body_bytes, headers.get(b"content-length"))
        apply = None if body is None else prepare(body)
        if apply is None:
            # Refused before the intake: the full route answers, with its own shapes (and its own access line).
            await full(scope, _replay(consumed, receive), send)
            return
        started = time.perf_counter()
        request_id = request_id_of(headers.get(b"x-request-id"))
        origin = Origin(actor=actor, request_id=request_id, traceparent=traceparent_of(headers.get(b"traceparent")))
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        self.metrics.started(template)
        try:
            answer = await apply(origin)
            status = answer.status
            headers_out: list[tuple[bytes, bytes]] = [
                _JSON,
                (b"content-length", str(len(answer.body)).encode()),
                *answer.headers,
                (b"x-request-id", request_id.encode()),
            ]
            start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": headers_out}
            content: HTTPResponseBodyEvent = {"type": "http.response.body", "body": answer.body, "more_body": False}
            await send(start)
            await send(content)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.finished(template, status, elapsed)
            # Accepted alerts are the storm: their access line is at debug. Errors log as every request does.
            (log.debug if status < 300 else log.info)(
                "request", method="POST", path=scope["path"], status=status, duration_ms=round(elapsed * 1000, 2)
            )
            structlog.contextvars.unbind_contextvars("request_id", "incident_id", "event_ids")

    def _notification(self, body: bytes) -> Apply | None:
        try:
            note = _NOTIFICATION.decode(body)
            alertmanager.dedup_key(note)  # a blank groupKey: the route's 400
        except (msgspec.DecodeError, DomainError, RecursionError):
            return None

        async def apply(origin: Origin) -> Answer:
            try:
                result = await accept_notification(note, origin, self.intake)
            except Exception as exc:  # answered as the route's exception handlers answer it
                return _error(exc)
            return Answer(200, _ENCODER.encode(result))

        return apply

    def _event(self, body: bytes) -> Apply | None:
        try:
            event = _EVENT.decode(body)
        except (msgspec.DecodeError, RecursionError):
            return None
        integration = self.routing_keys.integration(event.routing_key)
        if integration is None or pagerduty.problems(event):
            return None

        async def apply(origin: Origin) -> Answer:
            try:
                accepted = await accept_event(event, integration, origin, self.intake)
            except DomainError as exc:  # PagerDuty's shape, as the route answers it
                return Answer(400, _ENCODER.encode(pagerduty.invalid(str(exc))))
            except Exception as exc:
                if is_too_deep(exc):
                    return Answer(400, _ENCODER.encode(pagerduty.invalid(TOO_DEEP)))
                return _error(exc)
            return Answer(202, _ENCODER.encode(accepted))

        return apply


def _error(exc: Exception) -> Answer:
    code, error, headers = error_of(exc)
    extra = tuple((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())
    return Answer(code, _ENCODER.encode({"status": HTTPStatus(code).phrase, "error": error}), extra)


def _headers(scope: Scope) -> dict[bytes, str]:
    wanted = (b"authorization", b"content-length", b"x-request-id", b"traceparent")
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key in wanted and key not in found:  # the first of each, as the middleware reads them
            found[key] = value.decode("latin-1")
    return found


async def _read_body(receive: Receive, limit: int, length: str | None) -> tuple[bytes | None, list[Any]]:
    """The body, or None when it is larger than `limit`; and the messages read, to replay them."""
    consumed: list[Any] = []
    if length is not None and not (length.isascii() and length.isdigit() and int(length) <= limit):
        return None, consumed
    size = 0
    while True:
        message = await receive()
        consumed.append(message)
        if message["type"] != "http.request":
            return None, consumed  # disconnected: let the app see it
        size += len(message.get("body", b""))
        if size > limit:
            return None, consumed
        if not message.get("more_body", False):
            break
    if len(consumed) == 1:
        return consumed[0].get("body", b""), consumed
    return b"".join(m.get("body", b"") for m in consumed), consumed


def _replay(consumed: list[Any], receive: Receive) -> Receive:
    pending = list(consumed)

    async def again() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return again


class HttpMetrics:
    """The same series Litestar's Prometheus middleware keeps for every other route (shared objects, same
    labels), with each label set's children looked up once."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.app_name = config.app_name
        self.middleware = PrometheusMiddleware(app=_never_called, config=config)
        labels: dict[str, Any] = {"method": "POST", "path": "", "status_code": 200, "app_name": self.app_name}
        self.count = self.middleware.request_count(labels)
        self.time = self.middleware.request_time(labels)
        self.in_progress = self.middleware.requests_in_progress(labels)
        self.errors = self.middleware.requests_error_count(labels)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._progress: dict[str, Any] = {}

    def started(self, path: str) -> None:
        gauge = self._progress.get(path)
        if gauge is None:
            gauge = self._progress[path] = self.in_progress.labels("POST", path, 200, self.app_name)
        gauge.inc()

    def finished(self, path: str, status: int, seconds: float) -> None:
        self._progress[path].dec()
        children = self._children.get((path, status))
        if children is None:
            values = ("POST", path, status, self.app_name)
            children = self._children[(path, status)] = (self.count.labels(*values), self.time.labels(*values))
        children[0].inc()
        children[1].observe(seconds)
        if status >= 500:
            self.errors.labels("POST", path, status, self.app_name).inc()


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("HttpMetrics only keeps the series")
