"""One delivery against a real local receiver: DNS answers pinned, rebinding refused, no redirects, timeouts."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.workers.httpclient import HttpClient
from services.workers.webhooks.delivery import Deliverer
from services.workers.webhooks.settings import WebhookSettings
from services.workers.webhooks.worker import http_client
from shared.webhooks import Endpoint, EndpointSecret, new_secret
from tests.fakes.webhook_receiver import WebhookReceiver

BODY = b'{"id":"e1","type":"incident.created","subject":"1","incidentversion":1}'


class FlippingResolver:
    """A DNS server whose answers the test sets (the seam the worker resolves through)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def new_client() -> HttpClient:
    return http_client(WebhookSettings(timeout=2.0, ack_wait=5.0))


@pytest.fixture
async def deliverers() -> AsyncIterator[list[Deliverer]]:
    made: list[Deliverer] = []
    yield made
    for deliverer in made:
        await deliverer.aclose()


def endpoint(url: str, secret: str) -> Endpoint:
    now = datetime.now(UTC)
    return Endpoint(
        id="c" * 16,
        url=url,
        events=["incident.created"],
        secrets=[EndpointSecret(value=secret, created_at=now)],
        created_at=now,
        updated_at=now,
    )


async def test_connects_to_the_checked_address_and_refuses_a_rebound_name(
    deliverers: list[Deliverer], receiver: WebhookReceiver
) -> None:
    secret = new_secret()
    receiver.trust(secret)
    dns = FlippingResolver(["127.0.0.1"], ["169.254.169.254"])
    deliverer = Deliverer(new_client(), timeout=2.0, allow_private=True, resolver=dns)
    deliverers.append(deliverer)
    target = endpoint(f"http://hooks.example.test:{receiver.port}/hooks/in", secret)

    first = await deliverer.deliver(target, "e1", BODY)
    assert first.ok, first
    # The name does not exist in real DNS: the request went to the address our resolver answered.
    only = receiver.snapshot()[0]
    assert only.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert only.verified_by == [secret]

    second = await deliverer.deliver(target, "e2", BODY)
    assert second.status_code is None and second.error is not None
    assert second.error == "refused: hooks.example.test does not resolve to an address webhooks may call"
    assert len(receiver.snapshot()) == 1, "nothing was sent to the rebound address"
    assert dns.asked == ["hooks.example.test", "hooks.example.test"], "resolved again at each delivery"


async def test_redirects_are_not_followed_and_slow_answers_time_out(
    deliverers: list[Deliverer], receiver: WebhookReceiver
) -> None:
    secret = new_secret()
    receiver.trust(secret)
    deliverer = Deliverer(new_client(), timeout=1.0, allow_private=True)
    deliverers.append(deliverer)
    target = endpoint(f"{receiver.url}/hooks/in", secret)

    receiver.fail_next(1, 302, headers={"Location": "http://169.254.169.254/"})
    redirected = await deliverer.deliver(target, "e1", BODY)
    assert redirected.status_code == 302 and not redirected.ok
    assert redirected.error == "HTTP 302 redirect to http://169.254.169.254/ (not followed)"

    receiver.slow_next(1, 3.0)
    slow = await deliverer.deliver(target, "e2", BODY)
    assert slow.status_code is None and slow.error == "timeout after 1s"
    assert 0.9 < slow.duration < 2.5

    receiver.fail_next(1, 503, headers={"Retry-After": "42"})
    limited = await deliverer.deliver(target, "e3", BODY)
    assert limited.status_code == 503 and limited.retry_after == 42.0


async def test_loopback_refused_without_the_setting(deliverers: list[Deliverer], receiver: WebhookReceiver) -> None:
    deliverer = Deliverer(new_client(), timeout=2.0, allow_private=False)
    deliverers.append(deliverer)
    result = await deliverer.deliver(endpoint(f"{receiver.url}/hooks/in", new_secret()), "e1", BODY)
    assert result.error == "refused: 127.0.0.1 is loopback (WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)"
    assert receiver.snapshot() == []


def make_certificates(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `name` (openssl CLI)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=webhook test CA",
    )
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={name}"
    )
    (folder / "san.ext").write_text(f"subjectAltName=DNS:{name}\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


async def test_https_goes_to_the_checked_address_and_verifies_the_host_name(
    tmp_path: Path, deliverers: list[Deliverer]
) -> None:
    ca, cert, key = make_certificates(tmp_path, "hooks.example.test")
    receiver = WebhookReceiver(tls=(str(cert), str(key))).start()
    try:
        secret = new_secret()
        receiver.trust(secret)
        trusted = ssl.create_default_context(cafile=str(ca))

        def tls_client() -> HttpClient:
            return HttpClient(timeout=2.0, ssl_context=trusted)

        dns = FlippingResolver(["127.0.0.1"])
        deliverer = Deliverer(tls_client(), timeout=2.0, allow_private=True, resolver=dns)
        deliverers.append(deliverer)
        result = await deliverer.deliver(
            endpoint(f"https://hooks.example.test:{receiver.port}/hooks/in", secret), "e1", BODY
        )
        assert result.ok, result
        assert receiver.snapshot()[0].headers["host"] == f"hooks.example.test:{receiver.port}"
        assert receiver.snapshot()[0].verified_by == [secret]

        # Another name on the same address: the certificate does not match it, so nothing is sent,
        # even though a verified connection to that address is open in the pool.
        dns_other = FlippingResolver(["127.0.0.1"])
        other = Deliverer(tls_client(), timeout=2.0, allow_private=True, resolver=dns_other)
        deliverers.append(other)
        wrong = await other.deliver(
            endpoint(f"https://other.example.test:{receiver.port}/hooks/in", secret), "e2", BODY
        )
        assert wrong.status_code is None and wrong.error is not None and "CERTIFICATE_VERIFY_FAILED" in wrong.error
        reused = await deliverer.deliver(
            endpoint(f"https://other.example.test:{receiver.port}/hooks/in", secret), "e3", BODY
        )
        assert reused.status_code is None, "a pooled connection for another name is never reused"
        assert len(receiver.snapshot()) == 1
    finally:
        receiver.stop()
