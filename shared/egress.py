"""The SSRF guard of outbound webhooks: which URLs and addresses may be called.

The API checks a URL when an endpoint is registered; the worker checks again at every delivery,
after its own DNS resolution, and then connects to the very address it checked (so a DNS answer
that changes between the check and the connect, "rebinding", can't redirect the request).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.webhooks import MAX_URL_LENGTH

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
# Where an IPv6 address carries an IPv4 one in its last 32 bits: IPv4-compatible (::/96, deprecated but
# still routed by some stacks), IPv4-translated (::ffff:0:0:0/96, SIIT) and the NAT64 prefixes.
IPV4_IN_LOW_BITS = (
    ipaddress.ip_network("::/96"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)
# Cloud instance metadata and platform endpoints: refused always, even with WEBHOOK_ALLOW_PRIVATE_NETWORKS,
# since they hand out credentials. Some are outside link-local (Azure's wire server is a public address).
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle, ...
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.169.253",  # AWS VPC DNS
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
        "fd00:ec2::123",  # AWS time sync over IPv6
        "fd00:ec2::23",  # AWS ECS task metadata over IPv6
        "fd20:ce::254",  # GCP metadata over IPv6
        "168.63.129.16",  # Azure wire server
        "100.100.100.200",  # Alibaba Cloud metadata
        "192.0.0.192",  # Oracle Cloud metadata (classic)
    )
)
RESOLVE_TIMEOUT_SECONDS = 5.0


class BadUrl(ValueError):
    """Not an http(s) URL we can call."""


class TargetRefused(ValueError):
    """The host resolves to an address the guard refuses, or does not resolve.

    `str()` is what the client may see: for a host name it never names the address it resolved to (that
    would map internal DNS for anyone holding a token), nor tells "no such name" from "internal name"
    apart. `detail` says why, for the server's log.
    """

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    """The host name or literal address, without brackets."""
    port: int
    path: str
    """Path and query, at least "/"."""

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: str) -> str:
        """The URL with the host replaced by an address the guard checked."""
        host = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_target(url: str) -> Target:
    if len(url) > MAX_URL_LENGTH:
        raise BadUrl(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise BadUrl("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadUrl(f"url is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise BadUrl("url must start with http:// or https://")
    if not parts.hostname:
        raise BadUrl("url has no host")
    if parts.username is not None or parts.password is not None:
        raise BadUrl("url must not contain credentials")
    if parts.fragment:
        raise BadUrl("url must not contain a fragment")
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        raise BadUrl("url host is not a valid host name") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address) or address.is_loopback or address.is_unspecified:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in IPV4_IN_LOW_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why the guard refuses to call `address`, or None when it may be called."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = refusal(embedded, allow_private)
        return f"{reason} (embedded in {address})" if reason else None
    if address in METADATA:
        return f"{address} is a cloud metadata address"
    if any(address in net for net in LINK_LOCAL):
        return f"{address} is link-local"
    if address.is_multicast or address.is_unspecified:
        return f"{address} is not a unicast address"
    if address.is_global:
        return None
    if allow_private and (address.is_loopback or address.is_private):
        return None
    kind = "loopback" if address.is_loopback else "private or reserved"
    return f"{address} is {kind} (WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)"


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in found:
            found.append(address)
    return found


async def allowed_addresses(target: Target, allow_private: bool, resolver: Resolver = system_resolver) -> list[str]:
    """Every address the host resolves to, if the guard allows them all; else TargetRefused."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        hidden = f"{target.host} does not resolve to an address webhooks may call"
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                addresses = await resolver(target.host, target.port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise TargetRefused(hidden, detail=f"{target.host} does not resolve: {exc or type(exc).__name__}") from None
        if not addresses:
            raise TargetRefused(hidden, detail=f"{target.host} does not resolve")
    for address in addresses:
        reason = refusal(ipaddress.ip_address(address), allow_private)
        if reason is not None:
            if literal is not None:
                raise TargetRefused(reason)  # the client wrote the address itself
            raise TargetRefused(hidden, detail=f"{target.host} resolves to {reason}")
    return addresses
