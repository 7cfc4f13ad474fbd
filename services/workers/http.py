"""The one seam through which workers call outside systems: error mapping, and dry runs that only log."""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import structlog

from services.workers.deadline import time_left
from services.workers.errors import PermanentError, RateLimited, RetryableError, Wait
from services.workers.fence import check_fence
from services.workers.httpclient import ConnectFailed, Origin, Response, TransportError, retry_after_seconds
from shared import tracing
from shared.config import ConfigError

log = structlog.get_logger(__name__)

_WOULD_SEND: ContextVar[list[str] | None] = ContextVar("would_send", default=None)


def collect_dry_run_requests() -> list[str]:
    """From now on in this task (and the tasks it starts), a dry run's requests are listed here ("METHOD url")
    instead of logged one line each: the sync pass names them in its own line."""
    found: list[str] = []
    _WOULD_SEND.set(found)
    return found


DEFAULT_RETRY_AFTER = 10.0
MAX_RETRY_AFTER = 3600.0
# 429s in a row that mean the vendor limits us as a whole (not one unlucky call): then every call to
# it waits the Retry-After out, parked, instead of only the incident that got the 429.
RATE_LIMIT_STREAK = 3


@dataclass(frozen=True)
class Request:
    """One outside call, as built by a vendor module; `path` is relative to the vendor's base URL."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, str] = field(default_factory=dict)


DryResponder = Callable[[Request], Any]
Classifier = Callable[[Response], Exception | None]


class Sender(Protocol):
    """What sends the bytes: `services.workers.httpclient.HttpClient`, or a stand-in in unit tests.

    Raises TransportError (ConnectFailed when nothing was sent), TimeoutError, or ValueError for a target
    or header that would break the request's framing."""

    async def request(
        self,
        method: str,
        origin: Origin,
        target: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes | None = None,
    ) -> Response: ...


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value for HTTP Basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def parse_retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait from a vendor's Retry-After header (a default when absent or unreadable), capped."""
    seconds = retry_after_seconds(value, now)
    return DEFAULT_RETRY_AFTER if seconds is None else min(seconds, MAX_RETRY_AFTER)


def raise_for_status(vendor: str, response: Response) -> None:
    """Only 2xx is success. 3xx → RetryableError naming the Location, 429 → RateLimited, 409 and 5xx →
    RetryableError, other 4xx → PermanentError."""
    status = response.status_code
    if 200 <= status < 300:
        return
    path = response.path.partition("?")[0]
    if 300 <= status < 400:
        # Redirects are never followed (a vendor call must not go where nobody configured it to). A moved
        # base URL needs a human: retried with backoff within the retry budget, so nothing is lost meanwhile.
        location = response.headers.get("location", "(none)")
        log.error(
            "vendor answered a redirect: not applied; if its base URL moved, fix the worker's setting",
            vendor=vendor,
            method=response.method,
            path=path,
            status_code=status,
            location=location,
        )
        # 303 See Other is what a server answers after it acted; the others say "not here".
        applied = status not in (301, 302, 307, 308)
        raise RetryableError(
            f"{vendor} {response.method} {path} -> {status} redirect to {location}", maybe_applied=applied
        )
    what = f"{vendor} {response.method} {path} -> {status}: {response.text[:500]}"
    if status < 200:
        raise RetryableError(f"{what}: no final answer")
    if status == 429:
        raise RateLimited(what, parse_retry_after(response.headers.get("retry-after")))
    if status == 409:
        # A conflict (Zendesk: concurrent updates of one ticket) refused the change: try again later.
        retry_after = response.headers.get("retry-after")
        delay = parse_retry_after(retry_after) if retry_after else None
        raise RetryableError(what, delay=delay, maybe_applied=False)
    if status >= 500:
        raise RetryableError(what)
    raise PermanentError(what)


class VendorHttp:
    """Sends `Request`s to one vendor with its auth, or, in a dry run, logs them and fakes the answer."""

    def __init__(
        self,
        vendor: str,
        client: Sender,
        base_url: str,
        *,
        authorization: str | None = None,
        headers: Mapping[str, str] | None = None,
        dry_run: DryResponder | None = None,
        classify: Classifier | None = None,
    ) -> None:
        self.vendor = vendor
        self.client = client
        try:
            self.origin = Origin.parse(base_url)
        except ValueError as exc:
            raise ConfigError(f"{vendor}: {exc}") from exc
        fixed = dict(headers or {})
        if authorization is not None:
            fixed["Authorization"] = authorization
        self._headers = tuple(fixed.items())
        self._dry_run = dry_run
        self._classify = classify
        self._not_before = 0.0
        """Monotonic time before which the vendor asked us (Retry-After) not to call it again."""
        self._limited_in_a_row = 0

    @property
    def dry_run(self) -> bool:
        return self._dry_run is not None

    def rate_limited(self, retry_after: float) -> None:
        """A 429: the incident waits `retry_after` (its RateLimited says so); after several in a row, every
        call to this vendor waits it out too (parked, not holding a slot)."""
        self._limited_in_a_row += 1
        if self._limited_in_a_row >= RATE_LIMIT_STREAK:
            self._not_before = max(self._not_before, time.monotonic() + retry_after)

    def target(self, request: Request) -> str:
        """Path and query as sent."""
        target = self.origin.prefix + request.path
        if request.params:
            target += "?" + urllib.parse.urlencode(request.params)
        return target

    def url(self, request: Request) -> str:
        return self.origin.url(self.target(request))

    async def send(self, request: Request) -> Response:
        """The response for a 2xx; raises the mapped WorkerError otherwise."""
        if self._dry_run is not None:
            url = self.url(request)
            listed = _WOULD_SEND.get()
            if listed is not None:
                listed.append(f"{request.method} {url}")  # one log line per event, not one per request
            else:
                log.info("dry run: request not sent", vendor=self.vendor, method=request.method, url=url)
            # The body (the whole incident, often kilobytes) only at debug: rendering it at info for every
            # event cost more than the sync itself.
            log.debug("dry run: request body", vendor=self.vendor, method=request.method, url=url, json=request.json)
            return Response.of_json(200, self._dry_run(request))
        paused = self._not_before - time.monotonic()
        if paused > 0:
            raise Wait(f"{self.vendor} asked us to wait (Retry-After)", delay=paused)
        check_fence()  # before any work; the client checks again as the bytes leave
        left = time_left()
        what = f"{self.vendor} {request.method} {request.path}"
        if left is not None and left <= 0:
            raise RetryableError(f"{what}: not sent, the sync's deadline has passed", maybe_applied=False)
        body = None if request.json is None else msgspec.json.encode(request.json)
        try:
            async with asyncio.timeout(left):
                response = await self._request(request, body)
        except TimeoutError as exc:
            # No complete answer in time (the client's timeout or the sync's deadline): it may have been applied.
            raise RetryableError(f"{what}: no complete answer by the timeout or the sync's deadline") from exc
        except ConnectFailed as exc:
            raise RetryableError(f"{what}: {exc}", maybe_applied=False) from exc
        except TransportError as exc:
            raise RetryableError(f"{what}: {exc}", maybe_applied=exc.sent) from exc
        except ValueError as exc:
            # A target or header that would break the request's framing (e.g. a key from an answer with a
            # line break in it): nothing was sent, and sending it again can't help.
            raise PermanentError(f"{what}: not sent: {exc}") from exc
        try:
            if self._classify is not None and (error := self._classify(response)) is not None:
                raise error
            raise_for_status(self.vendor, response)
        except RateLimited as exc:
            self.rate_limited(exc.retry_after)
            raise
        self._limited_in_a_row = 0
        return response

    async def _request(self, request: Request, body: bytes | None) -> Response:
        target = self.target(request)
        if not tracing.recording():
            return await self.client.request(request.method, self.origin, target, headers=self._headers, body=body)
        # A client span per call (stable HTTP semantic conventions); the query string stays out of url.full.
        with tracing.tracer().start_as_current_span(
            request.method,
            kind=tracing.SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method,
                "server.address": self.origin.host,
                "server.port": self.origin.port,
                "url.full": self.origin.url(target.partition("?")[0]),
                "incidents.vendor": self.vendor,
            },
        ) as span:
            response = await self.client.request(request.method, self.origin, target, headers=self._headers, body=body)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_status(tracing.StatusCode.ERROR)
                span.set_attribute("error.type", str(response.status_code))
            return response

    async def json(self, request: Request) -> Any:
        """Send and decode the JSON body (None for an empty one)."""
        response = await self.send(request)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            # A 2xx that isn't JSON comes from a proxy or a maintenance page, not the API.
            raise RetryableError(f"{self.vendor} {request.path}: non-JSON 2xx response") from exc
