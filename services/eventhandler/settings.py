"""The event handler's settings, read once from the environment and checked at boot."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from shared.config import ConfigError, env_int, env_str
from shared.natsconn import NatsSettings

LOG_FORMATS = ("json", "console", "auto")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    nats: NatsSettings
    """NATS_URL, NATS_USER/NATS_PASSWORD, NATS_CREDS."""
    subscriptions_file: Path = Path("config/subscriptions.toml")
    """SUBSCRIPTIONS_FILE: each worker's initial event types."""
    stream_replicas: int = 1
    """STREAM_REPLICAS: replicas of INCIDENTS and DEADLETTERS (3 in a production cluster)."""
    health_host: str = "127.0.0.1"
    """HEALTH_HOST."""
    health_port: int | None = None
    """HEALTH_PORT: serve /health/live, /health/ready and /metrics there; unset turns it off."""
    log_format: str = "auto"
    """LOG_FORMAT: json, console or auto (JSON unless stderr is a terminal)."""
    log_level: str = "INFO"
    """LOG_LEVEL."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        subscriptions_file = Path(env_str(env, "SUBSCRIPTIONS_FILE", "config/subscriptions.toml") or "")
        if not subscriptions_file.is_file():
            raise ConfigError(f"SUBSCRIPTIONS_FILE {str(subscriptions_file)!r} is not a readable file")
        port_raw = env_str(env, "HEALTH_PORT")
        health_port = None if port_raw is None else env_int(env, "HEALTH_PORT", 0, minimum=1, maximum=65535)
        log_format = (env_str(env, "LOG_FORMAT", "auto") or "").lower()
        if log_format not in LOG_FORMATS:
            raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
        log_level = (env_str(env, "LOG_LEVEL", "INFO") or "").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        return cls(
            nats=NatsSettings.from_env(env),
            subscriptions_file=subscriptions_file,
            stream_replicas=env_int(env, "STREAM_REPLICAS", 1, minimum=1, maximum=5),
            health_host=env_str(env, "HEALTH_HOST", "127.0.0.1") or "127.0.0.1",
            health_port=health_port,
            log_format=log_format,
            log_level=log_level,
        )

    @property
    def log_json(self) -> bool | None:
        return {"json": True, "console": False}.get(self.log_format)
