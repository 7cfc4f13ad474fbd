"""Slack worker settings, read from the contract's environment variables."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from services.workers.settings import DEFAULT_CREATE_GRACE, env_create_grace
from shared.config import ConfigError, Secret, env_secret, env_str

DEFAULT_API_URL = "https://slack.com/api"
# Shown in dry-run logs when no channel is configured.
PLACEHOLDER_CHANNEL = "C0000000000"


class SlackSettings(msgspec.Struct, frozen=True, kw_only=True):
    api_url: str = DEFAULT_API_URL
    """SLACK_API_URL"""
    bot_token: Secret | None = None
    """SLACK_BOT_TOKEN: a bot token (xoxb-...) with chat:write and channels:history."""
    channel: str = PLACEHOLDER_CHANNEL
    """SLACK_CHANNEL: the channel id (C...); conversations.history does not take names."""

    interactive: bool = False
    """SLACK_SIGNING_SECRET is set: the root message carries Acknowledge/Resolve/Reopen buttons (the API
    checks the clicks' signatures; the worker only needs to know that it does)."""

    create_grace: float = DEFAULT_CREATE_GRACE
    """WORKER_CREATE_GRACE_SECONDS: wait before creating again after a create of unknown outcome."""

    @property
    def dry_run(self) -> bool:
        return self.bot_token is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackSettings:
        token, channel = env_secret(env, "SLACK_BOT_TOKEN"), env_str(env, "SLACK_CHANNEL")
        api_url = env_str(env, "SLACK_API_URL", DEFAULT_API_URL) or DEFAULT_API_URL
        if token and not channel:
            raise ConfigError("SLACK_CHANNEL is required when SLACK_BOT_TOKEN is set")
        if channel and channel.startswith("#"):
            raise ConfigError(f"SLACK_CHANNEL must be a channel id like C0123456789, not a name ({channel!r})")
        if not api_url.startswith(("https://", "http://")):
            raise ConfigError(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
        return cls(
            api_url=api_url,
            bot_token=token,
            channel=channel or PLACEHOLDER_CHANNEL,
            interactive=env_str(env, "SLACK_SIGNING_SECRET") is not None,
            create_grace=env_create_grace(env),
        )
