"""A webhook receiver that verifies every request with `standardwebhooks`, the spec's reference library."""

from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.fakes.server import FakeRequest, FakeServer, Reply
from tests.support.polling import eventually_sync


@dataclass
class Received:
    webhook_id: str
    event: dict[str, Any]
    status: int
    verified_by: list[str]
    """The receiver's secrets whose Webhook(secret).verify(...) accepted the request."""
    signatures: int
    headers: dict[str, str] = field(repr=False)


def _receive(server: WebhookReceiver, request: FakeRequest) -> Reply:
    return server.receive(request)


class WebhookReceiver(FakeServer):
    vendor = "webhook receiver"
    routes = [("POST", re.compile(r"/hooks/.*"), _receive)]

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.tls = tls
        """(certificate file, key file): serve HTTPS."""
        self.secrets: list[str] = []
        self.status = 200
        """What to answer to verified requests: 500 for an outage, 410 to say "gone"."""
        self.received: list[Received] = []

    def start(self) -> WebhookReceiver:
        if self.tls is None:
            super().start()
            return self
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.asgi,
            log_level="warning",
            lifespan="off",
            access_log=False,
            interface="asgi3",
            ssl_certfile=self.tls[0],
            ssl_keyfile=self.tls[1],
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        eventually_sync(lambda: server.started, what="the TLS webhook receiver")
        return self

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hooks/in"

    def trust(self, secret: str) -> None:
        with self.lock:
            self.secrets.append(secret)

    def answer(self, status: int) -> None:
        with self.lock:
            self.status = status

    def receive(self, request: FakeRequest) -> Reply:
        verified_by = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(request.body, request.headers)
            except WebhookVerificationError:
                continue
            verified_by.append(secret)
        status = self.status if verified_by else 401
        self.received.append(
            Received(
                webhook_id=request.headers.get("webhook-id", ""),
                event=json.loads(request.body),
                status=status,
                verified_by=verified_by,
                signatures=len(request.headers.get("webhook-signature", "").split()),
                headers=request.headers,
            )
        )
        return Reply(status, {"ok": 200 <= status < 300})

    # -- what the tests look at ------------------------------------------------------------------
    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def accepted(self) -> list[Received]:
        """Requests answered with 2xx, in arrival order."""
        return [r for r in self.snapshot() if 200 <= r.status < 300]

    def accepted_ids(self) -> list[str]:
        return [r.webhook_id for r in self.accepted()]
