"""One HTTP delivery: SSRF check after resolution, connect to the checked address, signed POST."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from services.workers.httpclient import ConnectFailed, HttpClient, Origin, TransportError, retry_after_seconds
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


def _short(error: str) -> str:
    return error[:MAX_ERROR_LENGTH]


def _status_error(status: int, location: str | None) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status} redirect to {location or '(none)'} (not followed)"
    return f"HTTP {status}"


class Deliverer:
    """Sends one event to one endpoint; never raises for a failure of the endpoint, returns it.

    Each request goes to an address the guard checked (`Origin.address`) and names the URL's host for
    Host, SNI and the certificate; the client pools connections by name and address together, so a TLS
    connection verified for one name is never reused for another name that shares its address.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        timeout: float,
        allow_private: bool,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.allow_private = allow_private
        self.resolver = resolver

    async def aclose(self) -> None:
        await self.client.aclose()

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
                now = int(time.time())
                secrets = endpoint.signing_secrets(datetime.now(UTC))
                headers = (
                    ("webhook-id", msg_id),
                    ("webhook-timestamp", str(now)),
                    ("webhook-signature", signature_header(secrets, msg_id, now, body)),
                )
                status, headers_in = await self._post(target, addresses, headers, body)
                retry_after = retry_after_seconds(headers_in.get("retry-after"))
                return result(status, _status_error(status, headers_in.get("location")), retry_after)
        except TargetRefused as exc:
            # The attempt is shown to token holders: the address stays in the server's log.
            log.warning("webhook target refused", host=target.host, reason=exc.detail)
            return result(None, f"refused: {exc}")
        except TimeoutError:
            return result(None, f"timeout after {self.timeout:g}s")
        except ConnectFailed as exc:
            log.warning("webhook target unreachable", host=target.host, error=str(exc))
            return result(None, f"cannot connect to {target.host_header}: {exc.reason}")
        except (TransportError, ValueError) as exc:
            return result(None, f"{type(exc).__name__}: {exc}")

    async def _post(
        self, target: Target, addresses: list[str], headers: tuple[tuple[str, str], ...], body: bytes
    ) -> tuple[int, dict[str, str]]:
        """POST to the first checked address that accepts a connection; never to a fresh DNS answer."""
        last: ConnectFailed | None = None
        for address in addresses:
            origin = Origin(target.scheme, target.host, target.port, "", address=address)
            try:
                response = await self.client.request("POST", origin, target.path, headers=headers, body=body)
            except ConnectFailed as exc:
                last = exc
                continue
            return response.status_code, response.headers
        assert last is not None
        raise last
