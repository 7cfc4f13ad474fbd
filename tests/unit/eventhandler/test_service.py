"""Endpoint failures map to micro error codes; metrics render as Prometheus text."""

from __future__ import annotations

from typing import Any, cast

import pytest
from nats.errors import NoRespondersError
from nats.js.errors import APIError, ServiceUnavailableError
from nats.micro.request import Request, ServiceError

from services.eventhandler.errors import NotFoundError, RequestError
from services.eventhandler.metrics import Metrics
from services.eventhandler.service import decode, handler
from shared.relay import PublishRequest


class FakeRequest:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.replies: list[bytes] = []

    async def respond(self, data: bytes = b"", headers: Any = None) -> None:
        self.replies.append(data)


def failing(exc: BaseException) -> Any:
    async def work(data: bytes) -> bytes:
        raise exc

    return work


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (RequestError("unknown event type: incident.foo"), "400"),
        (NotFoundError("dead letter not found: 3"), "404"),
        (NoRespondersError(), "503"),
        (ServiceUnavailableError(), "503"),
        (TimeoutError(), "503"),
        (APIError(code=500, description="boom"), "500"),
    ],
)
async def test_failures_become_service_errors(exc: BaseException, code: str) -> None:
    metrics = Metrics()
    request = FakeRequest(b"{}")
    with pytest.raises(ServiceError) as raised:
        await handler("x", failing(exc), metrics)(cast(Request, request))
    assert raised.value.code == code
    assert request.replies == []
    assert metrics.value("eventhandler_requests_total", endpoint="x", code=code) == 1


async def test_unexpected_errors_propagate_to_the_library() -> None:
    with pytest.raises(KeyError):
        await handler("x", failing(KeyError("k")), Metrics())(cast(Request, FakeRequest(b"")))


async def test_success_replies() -> None:
    async def echo(data: bytes) -> bytes:
        return data

    metrics = Metrics()
    request = FakeRequest(b'{"ok":true}')
    await handler("echo", echo, metrics)(cast(Request, request))
    assert request.replies == [b'{"ok":true}']
    assert metrics.value("eventhandler_requests_total", endpoint="echo", code="200") == 1


@pytest.mark.parametrize("body", [b"[]", b"nope", b'{"events": 3}', b'{"events": [], "extra": 1}'])
def test_bad_request_bodies_are_400(body: bytes) -> None:
    with pytest.raises(RequestError, match="bad request"):
        decode(body, PublishRequest)


def test_metrics_text() -> None:
    metrics = Metrics()
    metrics.inc("eventhandler_events_published_total", 2, type="incident.created")
    metrics.inc("eventhandler_events_rejected_total")
    text = metrics.render()
    assert 'incidents_eventhandler_events_published_total{type="incident.created"} 2.0\n' in text
    assert "incidents_eventhandler_events_rejected_total 1.0\n" in text
    assert "# TYPE incidents_eventhandler_requests_total counter" in text
