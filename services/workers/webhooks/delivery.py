"""One HTTP delivery: SSRF check after resolution, connect to the checked address, signed POST."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog

from services.workers.webhooks.signing import signature_header
from shared.egress import BadUrl, Resolver, Target, TargetRefused, allowed_addresses, parse_target, system_resolver
from shared.webhooks import MAX_ERROR_LENGTH, Endpoint

log = structlog.get_logger(__name__)

USER_AGENT = "incidents-webhooks/0.1"


@dataclass(frozen=True)
class Result:
    status_code: int | None
    error: str | None
    duration: float
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _short(error: str) -> str:
    return error[:MAX_ERROR_LENGTH]


class Deliverer:
    """Sends one event to one endpoint; never raises for a failure of the endpoint, returns it.

    Requests go to IP addresses, so connection pools are kept per host name: a TLS connection
    verified for one name is never reused for another name that shares its address.
    """

    def __init__(
        self,
        new_client: Callable[[], httpx.AsyncClient],
        *,
        timeout: float,
        allow_private: bool,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.new_client = new_client
        self.timeout = timeout
        self.allow_private = allow_private
        self.resolver = resolver
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}

    def _client(self, target: Target) -> httpx.AsyncClient:
        key = (target.scheme, target.host)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self.new_client()
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def deliver(self, endpoint: Endpoint, msg_id: str, body: bytes) -> Result:
        started = time.monotonic()

        def result(status: int | None, error: str | None, retry_after: float | None = None) -> Result:
            return Result(status, _short(error) if error else None, time.monotonic() - started, retry_after)

        try:
            target = parse_target(endpoint.url)
        except BadUrl as exc:
            return result(None, f"bad url: {exc}")
        try:
            async with asyncio.timeout(self.timeout):
                addresses = await allowed_addresses(target, self.allow_private, self.resolver)
                now = time.time()
                secrets = endpoint.signing_secrets(datetime.now(UTC))
                headers = {
                    "Host": target.host_header,
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(int(now)),
                    "webhook-signature": signature_header(secrets, msg_id, int(now), body),
                }
                status, retry_after = await self._post(target, addresses, headers, body)
                return result(status, None if 200 <= status < 300 else f"HTTP {status}", retry_after)
        except TargetRefused as exc:
            # The attempt is shown to token holders: the address stays in the server's log.
            log.warning("webhook target refused", host=target.host, reason=exc.detail)
            return result(None, f"refused: {exc}")
        except TimeoutError:
            return result(None, f"timeout after {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return result(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    async def _post(
        self, target: Target, addresses: list[str], headers: dict[str, str], body: bytes
    ) -> tuple[int, float | None]:
        """POST to the first checked address that accepts a connection; never to a fresh DNS answer."""
        # TLS: SNI and certificate checks use the URL's host name, while the socket goes to the address.
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        last: httpx.ConnectError | None = None
        for address in addresses:
            try:
                async with self._client(target).stream(
                    "POST", target.url_for(address), content=body, headers=headers, extensions=extensions
                ) as response:
                    return response.status_code, retry_after_seconds(response.headers.get("retry-after"), time.time())
            except httpx.ConnectError as exc:
                last = exc
        assert last is not None
        raise last
