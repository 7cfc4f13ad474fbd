"""The API's settings, read once from the environment in __main__ (or built directly by tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import msgspec

from shared.config import ConfigError, Secret, env_float, env_int, env_list, env_str
from shared.natsconn import NatsSettings
from shared.relay import MAX_EVENTS_PER_REQUEST

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/incidents.db"


class ApiToken(msgspec.Struct, frozen=True):
    name: str
    """Who the token belongs to; shown as the actor of each change."""
    secret: Secret


class ApiSettings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    """DATABASE_URL: sqlite+aiosqlite:///path or mysql+asyncmy://user:pass@host:3306/db."""
    nats: NatsSettings = msgspec.field(default_factory=lambda: NatsSettings(servers=["nats://127.0.0.1:4222"]))
    host: str = "127.0.0.1"
    """API_HOST."""
    port: int = 8000
    """API_PORT."""
    tokens: tuple[ApiToken, ...] = ()
    """API_TOKENS: comma-separated `token` or `name:token`; when set, every route but health and docs needs one."""
    max_body_bytes: int = 1_048_576
    """API_MAX_BODY_BYTES: larger bodies get 413."""
    db_pool_size: int = 20
    """DB_POOL_SIZE: MySQL connections per API process."""
    relay_batch_size: int = 500
    """OUTBOX_BATCH_SIZE: outbox rows claimed per round; requests are further bounded by shared.relay's limits."""
    relay_retry_max_seconds: float = 30.0
    """RELAY_RETRY_MAX_SECONDS: the longest wait between the relay's retries (after a failure or a parked event)."""
    relay_stall_seconds: float = 120.0
    """RELAY_STALL_SECONDS: readiness fails when the relay has waiting events but moved none for this long."""
    link_workers: tuple[str, ...] = ("jira", "slack", "zendesk")
    """LINK_WORKERS: whose KV buckets `GET /incident/{id}` reads for `links`."""
    log_format: str = "auto"
    """LOG_FORMAT: json, console or auto (console on a terminal)."""
    log_level: str = "INFO"
    """LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiSettings:
        url = env_str(env, "DATABASE_URL", DEFAULT_DATABASE_URL) or DEFAULT_DATABASE_URL
        if not url.startswith(("sqlite+aiosqlite://", "mysql+asyncmy://")):
            raise ConfigError("DATABASE_URL must start with sqlite+aiosqlite:// or mysql+asyncmy://")
        log_format = env_str(env, "LOG_FORMAT", "auto") or "auto"
        if log_format not in ("json", "console", "auto"):
            raise ConfigError("LOG_FORMAT must be json, console or auto")
        log_level = (env_str(env, "LOG_LEVEL", "INFO") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return cls(
            database_url=url,
            nats=NatsSettings.from_env(env),
            host=env_str(env, "API_HOST", "127.0.0.1") or "127.0.0.1",
            port=env_int(env, "API_PORT", 8000, minimum=0, maximum=65535),
            tokens=parse_tokens(env_list(env, "API_TOKENS")),
            max_body_bytes=env_int(env, "API_MAX_BODY_BYTES", 1_048_576, minimum=1024),
            db_pool_size=env_int(env, "DB_POOL_SIZE", 20, minimum=1, maximum=500),
            relay_batch_size=batch_size(env),
            relay_retry_max_seconds=env_float(env, "RELAY_RETRY_MAX_SECONDS", 30.0, minimum=0.1),
            relay_stall_seconds=env_float(env, "RELAY_STALL_SECONDS", 120.0, minimum=1.0),
            link_workers=tuple(env_list(env, "LINK_WORKERS")) or ("jira", "slack", "zendesk"),
            log_format=log_format,
            log_level=log_level,
        )


def batch_size(env: Mapping[str, str]) -> int:
    size = env_int(env, "OUTBOX_BATCH_SIZE", 500, minimum=1)
    if size > MAX_EVENTS_PER_REQUEST:
        raise ConfigError(
            f"OUTBOX_BATCH_SIZE must be at most {MAX_EVENTS_PER_REQUEST} "
            f"(the events the event handler takes in one request), got {size}"
        )
    return size


def parse_tokens(entries: list[str]) -> tuple[ApiToken, ...]:
    tokens = []
    for entry in entries:
        name, sep, secret = entry.partition(":")
        if not sep:
            secret = entry
            name = "token-" + hashlib.sha256(entry.encode()).hexdigest()[:8]
        if not secret or not name:
            raise ConfigError("API_TOKENS entries must be `token` or `name:token`")
        tokens.append(ApiToken(name=name, secret=Secret(secret)))
    return tuple(tokens)
