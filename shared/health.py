"""A tiny dependency-free HTTP server for `/health/live`, `/health/ready` and `/metrics`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_JSON = "application/json"
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
# Probes send a few hundred bytes; anything slower or bigger is not a probe.
_READ_TIMEOUT = 5.0
_MAX_HEAD = 8192


class HealthServer:
    """Serves liveness, readiness and Prometheus metrics; one request per connection."""

    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], Awaitable[bool]],
        metrics: Callable[[], str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._ready = ready
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self.port = port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._requested_port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("health server listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=_READ_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        status, content_type, body = await self._route(head[:_MAX_HEAD])
        response = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        with contextlib.suppress(ConnectionError):
            writer.write(response)
            await writer.drain()
        writer.close()

    async def _route(self, head: bytes) -> tuple[int, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) < 2:
            return 404, _JSON, b'{"status":"Not Found"}'
        method, path = parts[0], parts[1].split("?", 1)[0].rstrip("/")
        if method != "GET":
            return 405, _JSON, b'{"status":"Method Not Allowed"}'
        if path == "/health/live":
            return 200, _JSON, b'{"status":"ok"}'
        if path == "/health/ready":
            if await self._is_ready():
                return 200, _JSON, b'{"status":"ok"}'
            return 503, _JSON, b'{"status":"unavailable"}'
        if path == "/metrics" and self._metrics is not None:
            return 200, _PROMETHEUS, self._metrics().encode()
        return 404, _JSON, b'{"status":"Not Found"}'

    async def _is_ready(self) -> bool:
        try:
            return await asyncio.wait_for(self._ready(), timeout=_READ_TIMEOUT)
        except TimeoutError:
            return False
        except Exception as exc:  # a failing probe means "not ready", never a crashed server
            log.warning("readiness check failed", error=repr(exc))
            return False
