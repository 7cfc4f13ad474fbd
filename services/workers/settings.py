"""Settings every worker process shares: NATS, health port, and the runner's knobs."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from shared.config import ConfigError, env_float, env_int, env_str
from shared.natsconn import NatsSettings

# Probes come from the kubelet, not from loopback.
DEFAULT_HEALTH_HOST = "127.0.0.1"  # the manifests set 0.0.0.0 for kubelet probes


DEFAULT_CREATE_GRACE = 30.0
DEFAULT_RETRY_BUDGET = 48 * 3600.0  # as long as PagerDuty retries
DEFAULT_SYNC_TIMEOUT = 120.0


def env_create_grace(env: Mapping[str, str]) -> float:
    """WORKER_CREATE_GRACE_SECONDS: how long a create whose outcome is unknown (timeout, 5xx, crash)
    may still land outside; a worker waits that long before creating again."""
    return env_float(env, "WORKER_CREATE_GRACE_SECONDS", DEFAULT_CREATE_GRACE)


class RunnerSettings(msgspec.Struct, frozen=True, kw_only=True):
    concurrency: int = 16
    """WORKER_CONCURRENCY: incidents synced at the same time."""
    fetch_batch: int = 100
    """WORKER_FETCH_BATCH: messages asked for per pull request."""
    fetch_timeout: float = 2.0
    """WORKER_FETCH_TIMEOUT_SECONDS: how long one pull request waits for messages."""
    lease_ttl: float = 30.0
    """WORKER_LEASE_SECONDS: an incident's lease lasts this long unless renewed."""
    retry_base: float = 2.0
    """WORKER_RETRY_BASE_SECONDS: first redelivery delay; doubles with each delivery."""
    retry_max: float = 300.0
    """WORKER_RETRY_MAX_SECONDS: cap of the redelivery delay."""
    retry_budget: float = DEFAULT_RETRY_BUDGET
    """WORKER_RETRY_BUDGET_SECONDS: retryable failures are retried until this long after the event was
    stored in the stream; then it is dead-lettered. No count of deliveries limits it."""
    sync_timeout: float = DEFAULT_SYNC_TIMEOUT
    """WORKER_SYNC_TIMEOUT_SECONDS: the deadline of one sync of an incident; a vendor call still running
    then is abandoned as a call of unknown outcome and the event is retried."""
    shutdown_grace: float = 20.0
    """WORKER_SHUTDOWN_GRACE_SECONDS: time to finish in-flight events on SIGTERM."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerSettings:
        d = cls()
        settings = cls(
            concurrency=env_int(env, "WORKER_CONCURRENCY", d.concurrency, minimum=1, maximum=1024),
            fetch_batch=env_int(env, "WORKER_FETCH_BATCH", d.fetch_batch, minimum=1, maximum=1000),
            fetch_timeout=env_float(env, "WORKER_FETCH_TIMEOUT_SECONDS", d.fetch_timeout, minimum=0.1),
            lease_ttl=env_float(env, "WORKER_LEASE_SECONDS", d.lease_ttl, minimum=0.5),
            retry_base=env_float(env, "WORKER_RETRY_BASE_SECONDS", d.retry_base, minimum=0.0),
            retry_max=env_float(env, "WORKER_RETRY_MAX_SECONDS", d.retry_max, minimum=0.0),
            retry_budget=env_float(env, "WORKER_RETRY_BUDGET_SECONDS", d.retry_budget, minimum=1.0),
            sync_timeout=env_float(env, "WORKER_SYNC_TIMEOUT_SECONDS", d.sync_timeout, minimum=1.0),
            shutdown_grace=env_float(env, "WORKER_SHUTDOWN_GRACE_SECONDS", d.shutdown_grace, minimum=0.0),
        )
        if settings.retry_max < settings.retry_base:
            raise ConfigError(
                f"WORKER_RETRY_MAX_SECONDS ({settings.retry_max:g}) must be >= "
                f"WORKER_RETRY_BASE_SECONDS ({settings.retry_base:g})"
            )
        if settings.retry_budget < settings.retry_max:
            raise ConfigError(
                f"WORKER_RETRY_BUDGET_SECONDS ({settings.retry_budget:g}) must be >= "
                f"WORKER_RETRY_MAX_SECONDS ({settings.retry_max:g})"
            )
        return settings


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def refuse_proxy(env: Mapping[str, str]) -> None:
    """The workers' HTTP client speaks to vendors directly, and the webhooks worker must connect to the very
    address its SSRF guard checked, which a proxy would resolve again: a proxy setting would be silently
    ignored, so it stops the worker instead."""
    for name in PROXY_VARIABLES:
        if env.get(name, "").strip():
            raise ConfigError(
                f"{name} is set, but the workers use no proxy (they connect to vendors and webhook "
                f"endpoints directly); unset it and allow the workers' outbound traffic instead"
            )


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    nats: NatsSettings
    runner: RunnerSettings
    health_host: str = DEFAULT_HEALTH_HOST
    """HEALTH_HOST"""
    health_port: int | None = None
    """HEALTH_PORT: unset means no health server."""
    http_timeout: float = 10.0
    """WORKER_HTTP_TIMEOUT_SECONDS: per request to an outside system."""
    log_level: str = "INFO"
    """LOG_LEVEL"""
    log_format: str = "auto"
    """LOG_FORMAT: json, console or auto (JSON unless stderr is a terminal)."""

    @property
    def log_json(self) -> bool | None:
        return None if self.log_format == "auto" else self.log_format == "json"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceSettings:
        port = env_str(env, "HEALTH_PORT")
        level = (env_str(env, "LOG_LEVEL", "INFO") or "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        log_format = (env_str(env, "LOG_FORMAT", "auto") or "auto").lower()
        if log_format not in ("json", "console", "auto"):
            raise ConfigError(f"LOG_FORMAT must be json, console or auto, got {log_format!r}")
        refuse_proxy(env)
        return cls(
            nats=NatsSettings.from_env(env),
            runner=RunnerSettings.from_env(env),
            health_host=env_str(env, "HEALTH_HOST", DEFAULT_HEALTH_HOST) or DEFAULT_HEALTH_HOST,
            health_port=None if port is None else env_int(env, "HEALTH_PORT", 0, maximum=65535),
            http_timeout=env_float(env, "WORKER_HTTP_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            log_level=level,
            log_format=log_format,
        )
