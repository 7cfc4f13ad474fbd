"""Zendesk worker settings, read from the contract's environment variables."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from services.workers.settings import DEFAULT_CREATE_GRACE, env_create_grace
from shared.config import ConfigError, Secret, env_secret, env_str

# Shown in dry-run logs when no instance is configured.
PLACEHOLDER_BASE_URL = "https://your-subdomain.zendesk.com"


class ZendeskSettings(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str = PLACEHOLDER_BASE_URL
    """ZENDESK_BASE_URL, e.g. https://acme.zendesk.com"""
    email: str | None = None
    """ZENDESK_EMAIL: the agent the API token acts as."""
    api_token: Secret | None = None
    """ZENDESK_API_TOKEN"""

    create_grace: float = DEFAULT_CREATE_GRACE
    """WORKER_CREATE_GRACE_SECONDS: wait before creating again after a create of unknown outcome."""

    @property
    def dry_run(self) -> bool:
        return self.email is None or self.api_token is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ZendeskSettings:
        email, token = env_str(env, "ZENDESK_EMAIL"), env_secret(env, "ZENDESK_API_TOKEN")
        base_url = env_str(env, "ZENDESK_BASE_URL")
        if bool(email) != bool(token):
            raise ConfigError("ZENDESK_EMAIL and ZENDESK_API_TOKEN must be set together")
        if email and not base_url:
            raise ConfigError("ZENDESK_BASE_URL is required when Zendesk credentials are set")
        if base_url and not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"ZENDESK_BASE_URL must be an http(s) URL, got {base_url!r}")
        return cls(
            base_url=base_url or PLACEHOLDER_BASE_URL,
            email=email,
            api_token=token,
            create_grace=env_create_grace(env),
        )
