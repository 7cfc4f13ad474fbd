"""Lean routes: the hottest routes answered in front of Litestar's request machinery.

An alert storm is thousands of small, well-formed notifications a second, and creates come at the rate of the
monitoring that files them; a bare Litestar request costs about as much CPU as the work it carries. The app
(services/api/app.py) hands these requests to `LeanRoutes` before Litestar sees them. It does itself what the
middleware does for every other route: bearer token, request id, trace context, access log, HTTP metrics
(uvicorn's concurrency cap is in front of both). Each route's `prepare` decodes the body into the route's own
struct and returns the call the route would make. A request it would refuse before that call (no or a wrong
token, a body too large, not JSON, wrong types, a bad header) goes, body replayed, through the full Litestar
route instead: one code path makes every refusal, so the answers and their shapes are the routes'. With
tracing on, every request takes the full route (its server span).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
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

from services.api.incidents.events import Origin
from services.api.settings import ApiToken
from services.api.web.errors import error_of
from services.api.web.middleware import authenticate, request_id_of, traceparent_of
from shared import logcontext, tracing

log = structlog.get_logger("api.access")

ENCODER = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")
HEADERS = (b"authorization", b"content-length", b"x-request-id", b"traceparent", b"idempotency-key")
"""The request headers a lean route reads."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class LeanRequest:
    path: str
    """As Litestar's `request.url.path` has it: root_path and path."""
    headers: dict[bytes, str]
    """The first of each of `HEADERS` sent."""
    body: bytes


Apply = Callable[[Origin], Awaitable[Answer]]
"""A request that passed every check the route makes before its call: making the call is all that is left."""
Prepare = Callable[[LeanRequest], Apply | None]
"""The route's call for a request, or None when the full route must answer it (a refusal)."""
FastRoute = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]
"""Serves one request; the ASGI app it is given answers whatever the route would refuse."""


@dataclass(frozen=True, slots=True)
class LeanRoute:
    path: str
    """The route's path, as the metrics and the access line name it (the trailing-slash form is taken too)."""
    prepare: Prepare
    bearer: bool = True
    """Whether API_TOKENS guard it (PagerDuty's route authenticates by its routing key instead)."""
    quiet: bool = False
    """Accepted requests log their access line at debug (an alert storm's repeats); refusals log at info."""


class LeanRoutes:
    """Answers its routes' POSTs in front of the app; `route_of` says which requests it takes."""

    def __init__(
        self,
        routes: Iterable[LeanRoute],
        *,
        tokens: tuple[ApiToken, ...],
        max_body_bytes: int,
        prometheus: PrometheusConfig,
    ) -> None:
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.metrics = HttpMetrics(prometheus)
        self._routes: dict[str, FastRoute] = {}
        for route in routes:
            bare = route.path.rstrip("/")
            self._routes[bare] = self._routes[bare + "/"] = self._server(route)  # with or without the slash

    def route_of(self, scope: Scope | LifeSpanScope) -> FastRoute | None:
        if scope["type"] != "http" or scope.get("method") != "POST" or tracing.recording():
            return None
        if scope.get("query_string"):
            return None  # the full route says what it makes of a query
        return self._routes.get(scope["path"])

    def _server(self, route: LeanRoute) -> FastRoute:
        async def serve(scope: Scope, receive: Receive, send: Send, full: ASGIApp) -> None:
            await self._serve(route, scope, receive, send, full)

        return serve

    async def _serve(self, route: LeanRoute, scope: Scope, receive: Receive, send: Send, full: ASGIApp) -> None:
        headers = _headers(scope)
        actor = "anonymous"
        if route.bearer and self.tokens:
            found = authenticate(self.tokens, headers.get(b"authorization"))
            if found is None:
                await full(scope, receive, send)  # the middleware answers 401
                return
            actor = found
        body, consumed = await _read_body(receive, self.max_body_bytes, headers.get(b"content-length"))
        apply = None
        if body is not None:
            apply = route.prepare(LeanRequest(scope.get("root_path", "") + scope["path"], headers, body))
        if apply is None:
            # Refused before the call: the full route answers, with its own shapes (and its own access line).
            await full(scope, _replay(consumed, receive), send)
            return
        started = time.perf_counter()
        request_id = request_id_of(headers.get(b"x-request-id"))
        origin = Origin(actor=actor, request_id=request_id, traceparent=traceparent_of(headers.get(b"traceparent")))
        logcontext.bind(request_id=request_id)
        status = 500
        self.metrics.started(route.path)
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
            self.metrics.finished(route.path, status, elapsed)
            (log.debug if route.quiet and status < 300 else log.info)(
                "request", method="POST", path=scope["path"], status=status, duration_ms=round(elapsed * 1000, 2)
            )
            logcontext.unbind("request_id", "incident_id", "event_ids")


def error_answer(exc: Exception) -> Answer:
    """An exception answered as the routes' exception handlers answer it."""
    code, error, headers = error_of(exc)
    extra = tuple((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())
    return Answer(code, ENCODER.encode({"status": HTTPStatus(code).phrase, "error": error}), extra)


def _headers(scope: Scope) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key in HEADERS and key not in found:  # the first of each, as the middleware reads them
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
