"""The API's settings, read once from the environment in __main__ (or built directly by tests)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from services.api.integrations.settings import TwoWaySettings
from shared.config import ConfigError, Secret, env_bool, env_float, env_int, env_list, env_str
from shared.natsconn import NatsSettings
from shared.relay import MAX_EVENTS_PER_REQUEST

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/incidents.db"
ALERTMANAGER_INTEGRATION = "alertmanager"
"""The integration name of incidents from Alertmanager webhooks (for ALERT_AUTO_RESOLVE)."""
MAX_AUTO_RESOLVE_SECONDS = 90 * 24 * 3600
MIN_SECRET_LENGTH = 16
"""API tokens and integration keys shorter than this stop the API at start: they could be guessed."""


class ApiToken(msgspec.Struct, frozen=True):
    name: str
    """Who the token belongs to; shown as the actor of each change."""
    secret: Secret


class IntegrationKey(msgspec.Struct, frozen=True):
    name: str
    """The integration's name; shown as the actor of the changes its events make."""
    key: Secret


class AutoResolve(msgspec.Struct, frozen=True):
    integration: str
    """`alertmanager`, or a name from INTEGRATION_KEYS."""
    seconds: int
    """How long after its last alert an open incident resolves by itself."""


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
    integration_keys: tuple[IntegrationKey, ...] = ()
    """INTEGRATION_KEYS: comma-separated `name:key`; the routing keys `POST /v2/enqueue` accepts."""
    auto_resolve: tuple[AutoResolve, ...] = ()
    """ALERT_AUTO_RESOLVE: comma-separated `integration:seconds`; its incidents resolve after that long unalerted."""
    max_body_bytes: int = 1_048_576
    """API_MAX_BODY_BYTES: larger bodies get 413."""
    db_pool_size: int = 20
    """DB_POOL_SIZE: MySQL connections per API process."""
    relay_batch_size: int = 500
    """OUTBOX_BATCH_SIZE: outbox rows claimed per round; requests are further bounded by shared.relay's limits."""
    group_commit_max: int = 256
    """GROUP_COMMIT_MAX: concurrent creates committed in one transaction at most (one insert per table)."""
    group_commit_queue_max: int = 4096
    """GROUP_COMMIT_QUEUE_MAX: creates (and, separately, changes) waiting for a transaction; past it, 503."""
    max_concurrency: int = 2048
    """API_MAX_CONCURRENCY: open connections and requests uvicorn serves at once; past it, 503."""
    relay_retry_max_seconds: float = 30.0
    """RELAY_RETRY_MAX_SECONDS: the longest wait between the relay's retries (after a failure or a parked event)."""
    relay_stall_seconds: float = 120.0
    """RELAY_STALL_SECONDS: readiness fails when the relay has waiting events but moved none for this long."""
    link_workers: tuple[str, ...] = ("jira", "slack", "zendesk")
    """LINK_WORKERS: whose KV buckets `GET /incident/{id}` reads for `links`."""
    webhook_allow_private: bool = False
    """WEBHOOK_ALLOW_PRIVATE_NETWORKS: webhook URLs may point at loopback and private addresses (never link-local)."""
    webhook_secret_overlap: float = 86400.0
    """WEBHOOK_ROTATION_OVERLAP_SECONDS: after a rotation, the previous secret keeps signing this long."""
    webhook_max_endpoints: int = 100
    """WEBHOOK_MAX_ENDPOINTS: registered webhook endpoints at most; past it, `POST /webhooks` is a 409."""
    stream_catchup_max: int = 1000
    """STREAM_CATCHUP_MAX_EVENTS: a console stream resumed further behind than this starts now and reloads."""
    stream_max_per_token: int = 20
    """STREAM_MAX_PER_TOKEN: open `GET /incident/stream` per token (per process); past it, 429."""
    stream_max: int = 500
    """STREAM_MAX: open `GET /incident/stream` in all (per process); past it, 429."""
    two_way: TwoWaySettings = msgspec.field(default_factory=TwoWaySettings)
    """Slack, Jira and Zendesk signing secrets and the workers' own accounts (services/api/integrations/settings.py)."""
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
        keys = parse_integration_keys(env_list(env, "INTEGRATION_KEYS"))
        return cls(
            database_url=url,
            nats=NatsSettings.from_env(env),
            host=env_str(env, "API_HOST", "127.0.0.1") or "127.0.0.1",
            port=env_int(env, "API_PORT", 8000, minimum=0, maximum=65535),
            tokens=parse_tokens(env_list(env, "API_TOKENS")),
            integration_keys=keys,
            auto_resolve=parse_auto_resolve(env_list(env, "ALERT_AUTO_RESOLVE"), keys),
            max_body_bytes=env_int(env, "API_MAX_BODY_BYTES", 1_048_576, minimum=1024),
            db_pool_size=env_int(env, "DB_POOL_SIZE", 20, minimum=1, maximum=500),
            relay_batch_size=batch_size(env),
            # 15 columns a row: 1,000 rows stay under SQLite's 32,766 bound variables per statement.
            group_commit_max=env_int(env, "GROUP_COMMIT_MAX", 256, minimum=1, maximum=1000),
            group_commit_queue_max=env_int(env, "GROUP_COMMIT_QUEUE_MAX", 4096, minimum=1, maximum=1_000_000),
            max_concurrency=env_int(env, "API_MAX_CONCURRENCY", 2048, minimum=1, maximum=1_000_000),
            relay_retry_max_seconds=env_float(env, "RELAY_RETRY_MAX_SECONDS", 30.0, minimum=0.1),
            relay_stall_seconds=env_float(env, "RELAY_STALL_SECONDS", 120.0, minimum=1.0),
            link_workers=tuple(env_list(env, "LINK_WORKERS")) or ("jira", "slack", "zendesk"),
            webhook_allow_private=env_bool(env, "WEBHOOK_ALLOW_PRIVATE_NETWORKS", False),
            webhook_secret_overlap=env_float(env, "WEBHOOK_ROTATION_OVERLAP_SECONDS", 86400.0, minimum=0.0),
            webhook_max_endpoints=env_int(env, "WEBHOOK_MAX_ENDPOINTS", 100, minimum=1, maximum=10_000),
            stream_catchup_max=env_int(env, "STREAM_CATCHUP_MAX_EVENTS", 1000, minimum=0, maximum=1_000_000),
            stream_max_per_token=env_int(env, "STREAM_MAX_PER_TOKEN", 20, minimum=1, maximum=100_000),
            stream_max=env_int(env, "STREAM_MAX", 500, minimum=1, maximum=100_000),
            two_way=TwoWaySettings.from_env(env),
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
    for position, entry in enumerate(entries, start=1):
        name, sep, secret = entry.partition(":")
        if not sep:
            # Named by its place in the list: the actor goes to Jira, Slack and Zendesk, so nothing derived
            # from the token itself (not even a hash of it) may be in it.
            secret, name = entry, f"token-{position}"
        if not secret or not name:
            raise ConfigError("API_TOKENS entries must be `token` or `name:token`")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"API_TOKENS: the token of {name!r} is shorter than {MIN_SECRET_LENGTH} characters")
        tokens.append(ApiToken(name=name, secret=Secret(secret)))
    return tuple(tokens)


def parse_integration_keys(entries: list[str]) -> tuple[IntegrationKey, ...]:
    keys = []
    for entry in entries:
        name, sep, key = entry.partition(":")
        if not sep or not name.strip() or not key.strip():
            raise ConfigError("INTEGRATION_KEYS entries must be `name:key`")
        if len(key.strip()) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"INTEGRATION_KEYS: the key of {name.strip()!r} is shorter than {MIN_SECRET_LENGTH} characters"
            )
        keys.append(IntegrationKey(name=name.strip(), key=Secret(key.strip())))
    if len({k.name for k in keys}) != len(keys):
        raise ConfigError("INTEGRATION_KEYS names must be unique")
    if any(k.name == ALERTMANAGER_INTEGRATION for k in keys):
        raise ConfigError(
            f"INTEGRATION_KEYS must not use the name {ALERTMANAGER_INTEGRATION!r} (the Alertmanager route's)"
        )
    return tuple(keys)


def parse_auto_resolve(entries: list[str], keys: tuple[IntegrationKey, ...]) -> tuple[AutoResolve, ...]:
    known = {ALERTMANAGER_INTEGRATION} | {k.name for k in keys}
    rules = []
    for entry in entries:
        name, sep, raw = entry.partition(":")
        name = name.strip()
        if not sep or not raw.strip().isdigit():
            raise ConfigError(f"ALERT_AUTO_RESOLVE entries must be `integration:seconds`, got {entry!r}")
        if name not in known:
            raise ConfigError(f"ALERT_AUTO_RESOLVE names {name!r}: not `alertmanager` nor a name in INTEGRATION_KEYS")
        seconds = int(raw)
        if not 1 <= seconds <= MAX_AUTO_RESOLVE_SECONDS:
            raise ConfigError(f"ALERT_AUTO_RESOLVE seconds must be between 1 and {MAX_AUTO_RESOLVE_SECONDS}")
        rules.append(AutoResolve(integration=name, seconds=seconds))
    if len({r.integration for r in rules}) != len(rules):
        raise ConfigError("ALERT_AUTO_RESOLVE names each integration at most once")
    return tuple(rules)
