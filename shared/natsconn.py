"""NATS connection settings (NATS_URL, NATS_USER/NATS_PASSWORD, NATS_CREDS) and a connect helper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import nats
import structlog
from nats.aio.client import Client

from shared.config import ConfigError, Secret, env_secret, env_str

log = structlog.get_logger(__name__)


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True):
    servers: list[str]
    """NATS_URL, comma-separated for a cluster."""
    user: str | None = None
    password: Secret | None = None
    creds: str | None = None
    """NATS_CREDS: path to a .creds file."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NatsSettings:
        raw = env_str(env, "NATS_URL", "nats://127.0.0.1:4222") or ""
        servers = [s.strip() for s in raw.split(",") if s.strip()]
        for server in servers:
            if "://" not in server:
                raise ConfigError(f"NATS_URL entries need a scheme like nats://, got {server!r}")
        password = env_secret(env, "NATS_PASSWORD")
        user = env_str(env, "NATS_USER")
        if bool(user) != bool(password):
            raise ConfigError("NATS_USER and NATS_PASSWORD must be set together")
        return cls(servers=servers, user=user, password=password, creds=env_str(env, "NATS_CREDS"))


def inbox_prefix(user: str) -> str:
    """`_INBOX_<user>`: the only inbox subjects nats.conf lets that NATS user subscribe to, so that no
    service can read another's replies (JetStream deliveries, KV answers, the event handler's replies)."""
    return f"_INBOX_{user}"


async def connect(settings: NatsSettings, name: str, *, inbox: str, **options: Any) -> Client:
    """Connect with unlimited reconnects (the services ride out a NATS restart), with the inbox prefix of
    the NATS user `inbox`: requests, pull fetches and KV calls of nats-py all take their reply subjects
    from it."""

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", error=str(exc) or type(exc).__name__)

    kwargs: dict[str, Any] = {
        "servers": settings.servers,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 2,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
        "error_cb": on_error,
        "allow_reconnect": True,
        "inbox_prefix": inbox_prefix(inbox),
    }
    if settings.user and settings.password:
        kwargs["user"] = settings.user
        kwargs["password"] = settings.password.reveal()
    if settings.creds:
        kwargs["user_credentials"] = settings.creds
    kwargs.update(options)
    return await nats.connect(**kwargs)
