"""A stand-in for the workers' HTTP client in unit tests: a function answers each request in memory."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from services.workers.httpclient import Origin, Response


@dataclass(frozen=True)
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes | None

    def json(self) -> Any:
        return None if self.body is None else msgspec.json.decode(self.body)


Handler = Callable[[Sent], Response | Awaitable[Response]]


def answer(
    status: int, body: Any = None, headers: dict[str, str] | None = None, *, text: str | None = None
) -> Response:
    """A response with a JSON body (or `text`, or nothing)."""
    content = text.encode() if text is not None else b"" if body is None else msgspec.json.encode(body)
    return Response(status, {k.lower(): v for k, v in (headers or {}).items()}, content)


class HandlerSender:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sent: list[Sent] = []

    async def request(
        self,
        method: str,
        origin: Origin,
        target: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> Response:
        sent = Sent(method, origin.url(target), {k.lower(): v for k, v in headers}, body)
        self.sent.append(sent)
        result = self.handler(sent)
        response = await result if inspect.isawaitable(result) else result
        assert isinstance(response, Response)
        response.method, response.path = method, target
        return response

    async def aclose(self) -> None:
        return None
