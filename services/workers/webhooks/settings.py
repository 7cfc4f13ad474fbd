"""The webhooks worker's settings (WEBHOOK_*), read once in __main__."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from shared.config import ConfigError, env_bool, env_float


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True):
    timeout: float = 15.0
    """WEBHOOK_TIMEOUT_SECONDS: one delivery, DNS to answer; a slower endpoint counts as failed."""
    retry_budget: float = 3 * 24 * 3600.0
    """WEBHOOK_RETRY_BUDGET_SECONDS: after this long since the event was stored, give up (dead letter)."""
    retry_base: float = 5.0
    """WEBHOOK_RETRY_BASE_SECONDS: the first retry's delay; doubles with each attempt, with jitter."""
    retry_max: float = 3600.0
    """WEBHOOK_RETRY_MAX_SECONDS: cap of the retry delay (a Retry-After answer may ask for longer)."""
    allow_private: bool = False
    """WEBHOOK_ALLOW_PRIVATE_NETWORKS: allow loopback and private targets (never link-local)."""
    ack_wait: float = 30.0
    """WEBHOOK_ACK_WAIT_SECONDS: after a crash mid-delivery, the event is sent again after this long."""
    fetch_timeout: float = 2.0
    """How long one pull request waits for an event."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        d = cls()
        settings = cls(
            timeout=env_float(env, "WEBHOOK_TIMEOUT_SECONDS", d.timeout, minimum=0.1),
            retry_budget=env_float(env, "WEBHOOK_RETRY_BUDGET_SECONDS", d.retry_budget, minimum=0.0),
            retry_base=env_float(env, "WEBHOOK_RETRY_BASE_SECONDS", d.retry_base, minimum=0.01),
            retry_max=env_float(env, "WEBHOOK_RETRY_MAX_SECONDS", d.retry_max, minimum=0.01),
            allow_private=env_bool(env, "WEBHOOK_ALLOW_PRIVATE_NETWORKS", d.allow_private),
            ack_wait=env_float(env, "WEBHOOK_ACK_WAIT_SECONDS", d.ack_wait, minimum=1.0),
        )
        if settings.retry_max < settings.retry_base:
            raise ConfigError("WEBHOOK_RETRY_MAX_SECONDS must be >= WEBHOOK_RETRY_BASE_SECONDS")
        if settings.ack_wait <= settings.timeout:
            raise ConfigError("WEBHOOK_ACK_WAIT_SECONDS must be longer than WEBHOOK_TIMEOUT_SECONDS")
        return settings
