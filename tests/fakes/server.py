"""A tiny ASGI fake-vendor server run by uvicorn in a thread, with request log and fault injection."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn

from tests.support.polling import eventually_sync


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """Applies to the next `count` requests matching `method`/`path` (a regex); None matches all."""

    count: int
    reply: Reply | None = None
    delay: float = 0.0
    trickle: float = 0.0
    """Seconds between the bytes of the answer's body (the request itself is applied at once)."""
    method: str | None = None
    path: str | None = None

    def matches(self, request: FakeRequest) -> bool:
        if self.method and self.method != request.method:
            return False
        return not (self.path and not re.search(self.path, request.path))


Route = tuple[str, re.Pattern[str], Callable[..., Reply]]


class FakeServer:
    """Subclasses declare `routes` and `authorized`; state is guarded by `self.lock` (server thread)."""

    vendor = "fake"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[FakeRequest] = []
        self._faults: list[Fault] = []
        self.in_flight = 0
        self._stopping = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.asgi, log_level="warning", lifespan="off", access_log=False, interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        eventually_sync(lambda: self._server is not None and self._server.started, what=f"{self.vendor} fake")
        return self

    def stop(self) -> None:
        self._stopping = True  # ends trickling answers, so that the server can shut down
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- fault injection -------------------------------------------------------------------------
    def fail_next(
        self,
        count: int,
        status: int = 500,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        reply = Reply(status, body if body is not None else {"error": "injected"}, headers or {})
        with self.lock:
            self._faults.append(Fault(count, reply, method=method, path=path))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def rate_limit_next(self, count: int, retry_after: float = 0.2, **match: Any) -> None:
        self.fail_next(count, 429, {"error": "rate limited"}, headers={"Retry-After": str(retry_after)}, **match)

    def slow_next(self, count: int, seconds: float, **match: Any) -> None:
        with self.lock:
            self._faults.append(Fault(count, None, delay=seconds, **match))

    def trickle_next(self, count: int, seconds_per_byte: float, **match: Any) -> None:
        """Apply the next matching requests at once, but send each answer's body one byte at a time."""
        with self.lock:
            self._faults.append(Fault(count, None, trickle=seconds_per_byte, **match))

    def _take_fault(self, request: FakeRequest) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.count > 0 and fault.matches(request):
                    fault.count -= 1
                    return fault
        return None

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.method == method and re.search(path, r.path))

    # -- subclass API ----------------------------------------------------------------------------
    routes: list[Route] = []

    def authorized(self, request: FakeRequest) -> bool:
        return True

    def unauthorized(self) -> Reply:
        return Reply(401, {"error": "unauthorized"})

    def not_found(self) -> Reply:
        return Reply(404, {"error": "not found"})

    # -- ASGI ------------------------------------------------------------------------------------
    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = FakeRequest(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(scope["query_string"].decode())),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
        )
        with self.lock:
            self.requests.append(request)
            self.in_flight += 1
        try:
            await self._answer(request, send)
        finally:
            with self.lock:
                self.in_flight -= 1

    def idle(self) -> bool:
        """Every request received so far has been answered (late ones included)."""
        with self.lock:
            return self.in_flight == 0

    async def _answer(self, request: FakeRequest, send: Any) -> None:
        fault = self._take_fault(request)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.reply is not None:
            reply = fault.reply
        elif not self.authorized(request):
            reply = self.unauthorized()
        else:
            reply = self._dispatch(request)
        if fault is not None and fault.trickle:
            await self._trickle(send, reply, fault.trickle)
            return
        await self._send(send, reply)

    async def _trickle(self, send: Any, reply: Reply, seconds_per_byte: float) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"%d" % len(payload))]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        for i in range(len(payload)):
            if self._stopping:
                return
            await send({"type": "http.response.body", "body": payload[i : i + 1], "more_body": True})
            await asyncio.sleep(seconds_per_byte)
        await send({"type": "http.response.body", "body": b""})

    def _dispatch(self, request: FakeRequest) -> Reply:
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                with self.lock:
                    return handler(self, request, *match.groups())
        return self.not_found()

    @staticmethod
    async def _send(send: Any, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8")]
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def now() -> float:
    return time.time()
