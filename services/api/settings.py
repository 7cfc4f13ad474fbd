"""The API's settings, read once from the environment in __main__ (or built directly by tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import msgspec

from shared.config import ConfigError, Secret, env_int, env_list, env_str
from shared.natsconn import NatsSettings

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
    """OUTBOX_BATCH_SIZE: events per request to the event handler."""
    link_workers: tuple[str, ...] = ("jira", "slack", "zendesk")
    """LINK_WORKERS: whose KV buckets `GET /incident/{id}` reads for `links`."""
    stream_catchup_max: int = 1000
    """STREAM_CATCHUP_MAX_EVENTS: a console stream resumed further behind than this starts now and reloads."""
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
            relay_batch_size=env_int(env, "OUTBOX_BATCH_SIZE", 500, minimum=1, maximum=5000),
            link_workers=tuple(env_list(env, "LINK_WORKERS")) or ("jira", "slack", "zendesk"),
            stream_catchup_max=env_int(env, "STREAM_CATCHUP_MAX_EVENTS", 1000, minimum=0, maximum=1_000_000),
            log_format=log_format,
            log_level=log_level,
        )


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
