"""ASGI middleware: request ids and trace context, bearer-token auth, access logs."""

from __future__ import annotations

import hmac
import os
import re
import time
from typing import Any

import msgspec
import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.api.integrations.routes import PATHS as TWO_WAY_PATHS
from services.api.settings import ApiToken
from services.api.web.metrics import ApiMetrics
from shared import logcontext, tracing

log = structlog.get_logger("api.access")

PUBLIC_PREFIXES = ("/health", "/schema", "/metrics", "/ui/")
PUBLIC_PATHS = frozenset({"/ui"})
"""The console's page and files are public: the page asks for a token and sends it with each API call."""
# Routes that authenticate each request themselves (PagerDuty's Events API carries a routing key in the body;
# Slack, Jira and Zendesk sign theirs).
SELF_AUTHENTICATED = frozenset({"/v2/enqueue"}) | TWO_WAY_PATHS
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def new_traceparent() -> str:
    ids = os.urandom(24).hex()
    return f"00-{ids[:32]}-{ids[32:]}-01"


def request_id_of(incoming: str | None) -> str:
    """The caller's X-Request-Id when it is a sane one, else a new id."""
    return incoming if incoming and _REQUEST_ID.match(incoming) else os.urandom(16).hex()  # uuid4().hex's format


def traceparent_of(incoming: str | None) -> str:
    """With tracing on, the events continue the request's server span (which continued the caller's trace)."""
    traceparent = tracing.traceparent_of_current_span() or incoming
    return traceparent if traceparent and _TRACEPARENT.match(traceparent) else new_traceparent()


def authenticate(tokens: tuple[ApiToken, ...], authorization: str | None) -> str | None:
    """The name of the token a `Bearer` header presents, or None."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    presented = authorization[7:].strip().encode()
    actor = None
    for token in tokens:  # compare against every token: no early exit leaks which one matched
        if hmac.compare_digest(presented, token.secret.reveal().encode()):
            actor = token.name
    return actor


class RequestContextMiddleware:
    """Binds request_id to every log line, authenticates, and writes one access log line per request."""

    def __init__(self, app: ASGIApp, tokens: tuple[ApiToken, ...], metrics: ApiMetrics | None = None) -> None:
        self.app = app
        self.tokens = tokens
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(_header(scope, b"x-request-id"))
        traceparent = traceparent_of(_header(scope, b"traceparent"))
        path: str = scope["path"]
        logcontext.bind(request_id=request_id)
        state = scope.setdefault("state", {})
        state.update(request_id=request_id, traceparent=traceparent, actor="anonymous")
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            public = path.startswith(PUBLIC_PREFIXES) or path in PUBLIC_PATHS or path.rstrip("/") in SELF_AUTHENTICATED
            if self.tokens and not public:
                actor = self._authenticate(_header(scope, b"authorization"))
                if actor is None:
                    await _unauthorized(send_with_id)
                    return
                state["actor"] = actor
            # Public routes (readiness) show details only to a token holder; without API_TOKENS everyone is one.
            state["token_holder"] = (
                not self.tokens or not public or (self._authenticate(_header(scope, b"authorization")) is not None)
            )
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if not path.startswith(("/health", "/metrics")):
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=path,
                    status=status_holder["status"],
                    duration_ms=round(elapsed * 1000, 2),
                )
            logcontext.unbind("request_id", "incident_id", "event_ids")

    def _authenticate(self, authorization: str | None) -> str | None:
        return authenticate(self.tokens, authorization)


async def _unauthorized(send: Any) -> None:
    body = msgspec.json.encode({"status": "Unauthorized", "error": "missing or invalid bearer token"})
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="incidents"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
