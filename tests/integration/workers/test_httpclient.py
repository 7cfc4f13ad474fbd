"""The workers' HTTP/1.1 client against real sockets: keep-alive, framing, TLS, and what each failure means
for "may the vendor have applied it"."""

from __future__ import annotations

import asyncio
import contextlib
import select
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import structlog
import uvloop

from services.workers import httpclient
from services.workers.errors import PermanentError, RetryableError
from services.workers.http import Request, VendorHttp, basic_auth
from services.workers.httpclient import (
    MAX_RESPONSE_BODY_BYTES,
    MAX_RESPONSE_HEADERS,
    ConnectFailed,
    HttpClient,
    Origin,
    TransportError,
)
from tests.support.polling import eventually, eventually_sync
from tests.support.processes import free_port

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Gets the request head and body; writes an answer; returns whether to keep the connection open."""


class RawServer:
    """An HTTP server written by hand, so that each test decides the exact bytes and the closes."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                if not await self.answer(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
        self.port = free_port()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=ssl_context)
        try:
            yield self
        finally:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    @property
    def origin(self) -> Origin:
        return Origin.parse(f"http://127.0.0.1:{self.port}/api")


def json_answer(body: bytes = b'{"ok": true}', extra: bytes = b"") -> Answer:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        writer.write(extra + b"\r\n" + body)
        await writer.drain()
        return True

    return answer


async def test_connections_are_kept_alive_and_reused() -> None:
    async with RawServer(json_answer()).running() as server, HttpClient(timeout=5) as client:
        for _ in range(5):
            response = await client.request("GET", server.origin, "/api/x")
            assert response.status_code == 200 and response.json() == {"ok": True}
    assert server.connections == 1 and len(server.requests) == 5


def test_the_client_works_on_uvloop_as_the_workers_run_it() -> None:
    async def requests() -> int:
        async with RawServer(json_answer()).running() as server, HttpClient(timeout=5) as client:
            for _ in range(3):
                assert (await client.request("GET", server.origin, "/api/x")).json() == {"ok": True}
        return server.connections

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(requests()) == 1


async def test_the_request_carries_host_headers_and_a_json_body() -> None:
    async with RawServer(json_answer()).running() as server, HttpClient(timeout=5) as client:
        http = VendorHttp(
            "test", client, f"http://127.0.0.1:{server.port}/api/", authorization=basic_auth("me@x.io", "t0k")
        )
        await http.json(Request("POST", "/issue", json={"summary": "ünïcode"}, params={"a": "b c"}))
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/issue?a=b+c HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines
    assert "Authorization: Basic bWVAeC5pbzp0MGs=" in lines
    assert "Content-Type: application/json" in lines and f"Content-Length: {len(body)}" in lines
    assert body.decode() == '{"summary":"ünïcode"}'


async def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    async def chunked(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n'
        )
        return True

    async def until_close(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"b": 2}')
        await writer.drain()
        return False

    async with HttpClient(timeout=5) as client:
        async with RawServer(chunked).running() as server:
            assert (await client.request("GET", server.origin, "/")).json() == {"a": 1}
        async with RawServer(until_close).running() as server:
            assert (await client.request("GET", server.origin, "/")).json() == {"b": 2}
            assert (await client.request("GET", server.origin, "/")).json() == {"b": 2}
            assert server.connections == 2  # "Connection: close" is never reused


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def once(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await json_answer()(request, writer)
        return False  # closes without saying so

    async with RawServer(once).running() as server, HttpClient(timeout=5) as client:
        await client.request("GET", server.origin, "/")

        async def closed() -> None:
            while not all(c.closed for c in client._open):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(closed(), 5)
        assert (await client.request("GET", server.origin, "/")).status_code == 200
    assert server.connections == 2


async def test_a_refused_connection_surely_sent_nothing() -> None:
    origin = Origin.parse(f"http://127.0.0.1:{free_port()}")
    async with HttpClient(timeout=5) as client:
        with pytest.raises(ConnectFailed):
            await client.request("POST", origin, "/")
        http = VendorHttp("test", client, origin.url("/"))
        with pytest.raises(RetryableError) as caught:
            await http.send(Request("POST", "/issue", json={}))
    assert not caught.value.maybe_applied


async def test_a_server_that_hangs_up_after_reading_may_have_applied_the_call() -> None:
    async def hang_up(request: bytes, writer: asyncio.StreamWriter) -> bool:
        return False

    async with RawServer(hang_up).running() as server, HttpClient(timeout=5) as client:
        with pytest.raises(TransportError) as raw:
            await client.request("POST", server.origin, "/", body=b"{}")
        assert raw.value.sent
        http = VendorHttp("test", client, server.origin.url("/"))
        with pytest.raises(RetryableError) as caught:
            await http.send(Request("POST", "/issue", json={}))
    assert caught.value.maybe_applied


async def test_no_answer_within_the_timeout_may_have_been_applied_and_frees_the_connection() -> None:
    never = asyncio.Event()  # a vendor that never answers: nothing sets it

    async def silent(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await never.wait()
        return False

    async with RawServer(silent).running() as server, HttpClient(timeout=0.3) as client:
        http = VendorHttp("test", client, server.origin.url("/"))
        with pytest.raises(RetryableError, match="no complete answer") as caught:
            await http.send(Request("POST", "/issue", json={}))
        assert caught.value.maybe_applied
        assert client._open == set()


async def test_a_malformed_answer_is_a_transport_error() -> None:
    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        return True

    async with RawServer(garbage).running() as server, HttpClient(timeout=5) as client:
        with pytest.raises(TransportError):
            await client.request("GET", server.origin, "/")


async def test_header_values_cannot_inject_lines() -> None:
    async with RawServer(json_answer()).running() as server, HttpClient(timeout=5) as client:
        with pytest.raises(ValueError, match="forbidden"):
            await client.request("GET", server.origin, "/", headers=[("X-Token", "a\r\nX-Evil: 1")])
    assert server.requests == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is installed by .ci/run"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_verifies_the_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    async with RawServer(json_answer()).running(server_context) as server:
        origin = Origin.parse(f"https://localhost:{server.port}/api")
        trusting = ssl.create_default_context(cafile=str(cert))
        async with HttpClient(timeout=5, ssl_context=trusting) as client:
            assert (await client.request("GET", origin, "/api/x")).json() == {"ok": True}
        async with HttpClient(timeout=5) as client:  # the system's CAs don't know this certificate
            with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
                await client.request("GET", origin, "/api/x")


def fixed_answer(raw: bytes, keep_open: bool = True) -> Answer:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep_open

    return answer


@pytest.mark.parametrize(
    ("status", "maybe_applied"), [(301, False), (302, False), (307, False), (308, False), (303, True)]
)
async def test_a_redirect_is_a_failure_that_names_the_location(status: int, maybe_applied: bool) -> None:
    moved = b"HTTP/1.1 %d Moved\r\nLocation: https://new.example/rest/api/3/issue\r\nContent-Length: 0\r\n\r\n" % status
    async with RawServer(fixed_answer(moved)).running() as server, HttpClient(timeout=5) as client:
        http = VendorHttp("jira", client, server.origin.url("/"))
        with structlog.testing.capture_logs() as logs, pytest.raises(RetryableError) as caught:
            await http.send(Request("POST", "/issue", json={}))
    assert "redirect to https://new.example/rest/api/3/issue" in str(caught.value)
    assert caught.value.maybe_applied is maybe_applied
    assert [entry["location"] for entry in logs if "redirect" in entry["event"]] == [
        "https://new.example/rest/api/3/issue"
    ]
    assert len(server.requests) == 1, "never followed"


async def test_interim_1xx_answers_are_skipped_for_the_final_one() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id": "7"}'
    )
    async with RawServer(fixed_answer(raw)).running() as server, HttpClient(timeout=5) as client:
        for _ in range(2):  # and the connection stays usable
            response = await client.request("POST", server.origin, "/api/issue", body=b"{}")
            assert response.status_code == 201 and response.json() == {"id": "7"}
            assert "link" not in response.headers
    assert server.connections == 1


async def test_an_oversized_body_is_an_error_not_a_memory_hog() -> None:
    async def huge(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_RESPONSE_BODY_BYTES * 2))
        with contextlib.suppress(ConnectionError):
            for _ in range(2 * MAX_RESPONSE_BODY_BYTES // 65536):
                writer.write(b"x" * 65536)
                await writer.drain()
        return False

    async with RawServer(huge).running() as server, HttpClient(timeout=10) as client:
        with pytest.raises(TransportError, match="body exceeds") as caught:
            await client.request("GET", server.origin, "/")
        assert caught.value.sent and client._open == set()


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-Filler-%d: a\r\n" % n for n in range(MAX_RESPONSE_HEADERS + 1)),
        b"X-Big: " + b"a" * 70_000 + b"\r\n",
    ],
    ids=["too many", "too long"],
)
async def test_an_oversized_header_block_is_an_error(headers: bytes) -> None:
    raw = b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 2\r\n\r\n{}"
    async with RawServer(fixed_answer(raw)).running() as server, HttpClient(timeout=5) as client:
        with pytest.raises(TransportError, match="headers exceed"):
            await client.request("GET", server.origin, "/")


@pytest.mark.parametrize(
    "target", ["/api/x\r\nX-Evil: 1", "/api/x\nHost: evil", "/api/x HTTP/1.0\r\n\r\nGET /", "/a\0b"]
)
async def test_a_request_target_that_could_inject_lines_is_refused_before_sending(target: str) -> None:
    async with RawServer(json_answer()).running() as server, HttpClient(timeout=5) as client:
        with pytest.raises(ValueError, match="forbidden"):
            await client.request("GET", server.origin, target)
        http = VendorHttp("jira", client, server.origin.url("/"))
        with pytest.raises(PermanentError, match="not sent"):
            await http.send(Request("POST", "/issue/" + target.removeprefix("/api/") + "/comment", json={}))
    assert server.requests == []


async def test_a_close_delimited_body_cut_by_a_reset_is_an_error() -> None:
    head_read = asyncio.Event()

    async def cut(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"key": "OPS-')
        await writer.drain()
        await head_read.wait()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        writer.transport.abort()
        return False

    async with RawServer(cut).running() as server, HttpClient(timeout=5) as client:
        call = asyncio.create_task(client.request("GET", server.origin, "/"))

        async def parsed_head() -> bool:
            return any(c._status == 200 for c in client._open)

        await eventually(parsed_head, what="the client to read the answer's head")
        head_read.set()
        with pytest.raises(TransportError, match="closed the connection") as caught:
            await call
    assert caught.value.sent


class ClosingServer:
    """A blocking server in a thread: answers one request per connection with keep-alive, then closes
    the connection when told, while the client's event loop is not running."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.close_first = threading.Event()
        self.first_closed = threading.Event()
        self.requests_per_connection: list[int] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _answer_all(self, conn: socket.socket, stop: threading.Event | None) -> None:
        served = 0
        self.requests_per_connection.append(0)
        conn.settimeout(5)
        while True:
            if stop is not None and served == 1:
                stop.wait(5)
                break
            try:
                data = conn.recv(65536)
            except OSError:
                break
            if not data:
                break
            served += 1
            self.requests_per_connection[-1] = served
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        conn.close()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            first, _ = self.listener.accept()
            self._answer_all(first, self.close_first)
            self.first_closed.set()
            second, _ = self.listener.accept()
            self._answer_all(second, None)

    @contextlib.contextmanager
    def running(self) -> Iterator[ClosingServer]:
        self.thread.start()
        try:
            yield self
        finally:
            self.close_first.set()
            self.listener.close()
            self.thread.join(5)


async def test_a_kept_alive_connection_closed_while_idle_is_detected_before_reuse() -> None:
    """The close is in the kernel, but the event loop has not run since: the connection must not be taken."""
    server = ClosingServer()
    with server.running():
        origin = Origin.parse(f"http://127.0.0.1:{server.port}/api")
        async with HttpClient(timeout=5) as client:
            assert (await client.request("POST", origin, "/api/issue", body=b"{}")).status_code == 200
            (idle,) = client._idle[origin]
            # Blocking on purpose: the loop must not see the close before the next request picks a connection.
            server.close_first.set()
            assert server.first_closed.wait(5)
            fd = idle.transport.get_extra_info("socket").fileno()  # type: ignore[union-attr]
            eventually_sync(lambda: select.select([fd], [], [], 0)[0], timeout=5, what="the close to arrive")
            assert not idle.closed, "the loop has not handled the close yet"
            response = await client.request("POST", origin, "/api/issue", body=b"{}")
            assert response.status_code == 200
    assert server.requests_per_connection == [1, 1], "the second request went over a new connection"


async def test_origins_no_longer_used_are_forgotten_with_their_expired_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The webhooks worker meets a new origin per address a name resolves to; the pool must not keep them all."""
    monkeypatch.setattr(httpclient, "KEEPALIVE_EXPIRY_SECONDS", 0.0)
    async with RawServer(json_answer()).running() as server, HttpClient(timeout=5) as client:
        for n in range(1, 4):
            pinned = Origin("http", f"hooks-{n}.example.test", server.port, "", address="127.0.0.1")
            assert (await client.request("POST", pinned, "/hooks", body=b"{}")).status_code == 200
        assert len(client._slots) <= 1 and len(client._idle) <= 1 and len(client._open) <= 1
    assert server.connections == 3
