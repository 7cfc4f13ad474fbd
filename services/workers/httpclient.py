"""The workers' HTTP/1.1 client: keep-alive connections per origin, httptools parsing, fenced writes.

Every worker uses it: the vendor workers and the webhooks worker (which pins each connection to the
address its SSRF guard checked, `Origin.address`). httpx spent half of a worker's CPU per event on its
request and response models, auth flow and h11 (py-spy, `just bench --profile`), and aiohttp a fifth more
than this client (docs/http-client.md); vendor calls need none of that: JSON bodies, a handful of fixed
headers, HTTPS with verified certificates, no proxies, no redirects, no compression. The fence is checked
in the same synchronous step as the socket write: a replica frozen anywhere before that line finds its
lease gone on thaw and sends nothing.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import re
import select
import ssl
import time
import typing
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httptools
import msgspec

from services.workers.fence import check_fence

# Servers close idle connections (uvicorn after 5 s, load balancers after 60 s); reusing one that the
# server is closing right then fails a request that may have been applied, so drop ours first.
KEEPALIVE_EXPIRY_SECONDS = 4.0
CONNECT_TIMEOUT_SECONDS = 5.0
# Vendors' answers are small JSON documents (a search page, an issue); anything far larger is a proxy's
# page or a hostile endpoint, and must not grow a worker's memory without end.
MAX_RESPONSE_BODY_BYTES = 8 * 1024 * 1024
MAX_RESPONSE_HEADER_BYTES = 64 * 1024
MAX_RESPONSE_HEADERS = 100
_DELTA_SECONDS = re.compile(r"\d{1,10}(\.\d{1,6})?")


class TransportError(Exception):
    """No complete answer. `sent`: whether the request may have reached the server (then it may be applied)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class ConnectFailed(TransportError):
    """`reason`: why, without the address (the webhooks worker shows it to the endpoint's owner)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message, sent=False)
        self.reason = reason or message


def _connect_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or type(exc).__name__)
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return type(exc).__name__


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header in seconds (delta-seconds or an HTTP date, never below 0); None when absent
    or unreadable. The one parser of every worker; each decides what an absent one means."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; a date without a zone isn't one
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port of a base URL, and its path prefix; parsed once per vendor.

    `address`, when set, is where the connection goes instead of resolving `host` (which still names the
    server for Host, SNI and the certificate check): the webhooks worker's SSRF guard checked it. It is part
    of the pool's key, so a connection is reused only for the same name at the same address.
    """

    scheme: str
    host: str
    port: int
    prefix: str
    address: str | None = None

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url(self, target: str) -> str:
        return f"{self.scheme}://{self.host_header}{target}"


class Response:
    __slots__ = ("content", "headers", "method", "path", "status_code")

    def __init__(
        self, status_code: int, headers: dict[str, str], content: bytes, method: str = "GET", path: str = "/"
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        """Lower-case names."""
        self.content = content
        self.method = method
        self.path = path

    @classmethod
    def of_json(cls, status_code: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status_code, headers or {}, msgspec.json.encode(body))

    def json(self) -> Any:
        """The decoded body; ValueError when it isn't JSON."""
        return msgspec.json.decode(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _check_request_line(method: str, target: str) -> None:
    if not method.isalpha() or not target.startswith("/") or any(c in target for c in " \r\n\0\t"):
        raise ValueError(f"request target {target[:200]!r} has a forbidden character")


def _header_block(headers: Iterable[tuple[str, str]]) -> str:
    lines = []
    for name, value in headers:
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"header {name!r} has a forbidden character")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Response] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._status = 0
        self._reusable = True
        self._method = "GET"
        self._path = "/"
        self._header_bytes = 0
        self._header_count = 0
        self._body_bytes = 0
        self._too_large: str | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's isn't an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            reason = self._too_large or f"malformed HTTP answer: {exc}"
            self._fail(TransportError(reason, sent=True))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        framed = "content-length" in self._headers or "transfer-encoding" in self._headers
        if self._status and not framed and exc is None:
            self._complete()  # a body delimited by a clean close
        else:
            self._fail(TransportError(f"the server closed the connection ({exc or 'EOF'})", sent=True))

    # httptools callbacks; raising in one makes feed_data raise HttpParserCallbackError
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        self._header_count += 1
        if self._header_bytes > MAX_RESPONSE_HEADER_BYTES or self._header_count > MAX_RESPONSE_HEADERS:
            self._too_large = (
                f"answer's headers exceed {MAX_RESPONSE_HEADERS} fields or {MAX_RESPONSE_HEADER_BYTES} bytes"
            )
            raise ValueError(self._too_large)
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._reusable = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_RESPONSE_BODY_BYTES:
            self._too_large = f"answer's body exceeds {MAX_RESPONSE_BODY_BYTES} bytes"
            raise ValueError(self._too_large)
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200 and self._status != 101:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows on this connection.
            self._reset()
            return
        self._complete()

    # the client's side
    def _reset(self) -> None:
        self._headers, self._body, self._status, self._reusable = {}, [], 0, True
        self._header_bytes = self._header_count = self._body_bytes = 0

    def send(self, data: bytes, method: str, path: str) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._reset()
        self._method, self._path = method, path
        check_fence()  # no await between this and the bytes leaving
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return waiter

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed

    def closed_while_idle(self) -> bool:
        """Whether the socket has anything to read while no request is out: the server's close (or bytes
        it should not have sent) that the event loop has not handled yet. Reusing it would send a request
        into a closing connection, whose failure looks like one that may have been applied."""
        if self.closed or self.transport is None:
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()  # its request was given up (timeout, cancellation)
        if self.transport is not None:
            self.transport.close()

    def _complete(self) -> None:
        if self._waiter is None or self._waiter.done():
            return
        if self._status == 101:
            self._fail(TransportError("the server switched protocols, which was never asked", sent=True))
            self.close()
            return
        content = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._waiter.set_result(Response(self._status, self._headers, content, self._method, self._path))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


class HttpClient:
    """Pooled HTTP/1.1 to any number of origins; `request` returns a Response or raises TransportError
    (ConnectFailed when nothing was sent) or TimeoutError (no complete answer within `timeout`)."""

    def __init__(
        self,
        *,
        timeout: float,
        max_connections: int = 32,
        user_agent: str = "incidents-worker/0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_connections = max_connections
        self.user_agent = user_agent
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._slots: dict[Origin, asyncio.Semaphore] = {}
        self._users: dict[Origin, int] = {}
        self._open: set[_Connection] = set()
        self._swept = time.monotonic()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def request(
        self,
        method: str,
        origin: Origin,
        target: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """`target`: the path (with the origin's prefix) and query, already encoded; ValueError when it (or a
        header) could break the request's framing."""
        _check_request_line(method, target)
        head = f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\nUser-Agent: {self.user_agent}\r\n"
        head += _header_block(headers)
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        elif method in ("POST", "PUT", "PATCH"):
            head += "Content-Length: 0\r\n"
        data = (head + "\r\n").encode("latin-1") + (body or b"")
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = asyncio.Semaphore(self.max_connections)
        self._users[origin] = self._users.get(origin, 0) + 1
        try:
            async with slots:
                connection = await self._connection(origin)
                try:
                    async with asyncio.timeout(self.timeout):
                        response = await connection.send(data, method, target)
                except BaseException:
                    self._discard(connection)
                    raise
                if connection.reusable:
                    connection.idle_since = time.monotonic()
                    self._idle.setdefault(origin, []).append(connection)
                else:
                    self._discard(connection)
                return response
        finally:
            self._users[origin] -= 1
            if time.monotonic() - self._swept > KEEPALIVE_EXPIRY_SECONDS:
                self._sweep()

    def _sweep(self) -> None:
        """Close expired idle connections and forget origins nobody uses: the webhooks worker meets a new
        origin for every address an endpoint's name resolves to, which must not add up over weeks."""
        now = self._swept = time.monotonic()
        for origin in list(self._slots):
            idle = [c for c in self._idle.get(origin, ()) if now - c.idle_since < KEEPALIVE_EXPIRY_SECONDS]
            for connection in self._idle.get(origin, ()):
                if connection not in idle:
                    self._discard(connection)
            if idle:
                self._idle[origin] = idle
            else:
                self._idle.pop(origin, None)
                if not self._users.get(origin):
                    del self._slots[origin]
                    self._users.pop(origin, None)

    async def _connection(self, origin: Origin) -> _Connection:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            fresh = now - connection.idle_since < KEEPALIVE_EXPIRY_SECONDS
            if fresh and connection.reusable and not connection.closed_while_idle():
                return connection
            self._discard(connection)
        loop = asyncio.get_running_loop()
        secure = origin.scheme == "https"
        try:
            async with asyncio.timeout(min(CONNECT_TIMEOUT_SECONDS, self.timeout)):
                _, protocol = await loop.create_connection(
                    _Connection,
                    origin.address or origin.host,
                    origin.port,
                    ssl=self._ssl_context() if secure else None,
                    server_hostname=origin.host if secure else None,
                )
        except TimeoutError as exc:
            raise ConnectFailed(f"cannot connect to {origin.host_header}: timed out", "timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {origin.host_header}: {exc}", _connect_reason(exc)) from exc
        self._open.add(protocol)
        return protocol

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
