"""Two-way sync settings: the vendors' signing secrets and who the workers act as (to recognise echoes)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from shared.config import ConfigError, Secret, env_secret, env_str


class TwoWaySettings(msgspec.Struct, frozen=True, kw_only=True):
    slack_signing_secret: Secret | None = None
    """SLACK_SIGNING_SECRET: the Slack app's signing secret; unset, the interactivity route answers 404."""
    jira_webhook_secret: Secret | None = None
    """JIRA_WEBHOOK_SECRET: the secret of the Jira admin webhook; unset, the Jira route answers 404."""
    zendesk_webhook_secret: Secret | None = None
    """ZENDESK_WEBHOOK_SECRET: the Zendesk webhook's signing secret; unset, the Zendesk route answers 404."""
    jira_account_id: str | None = None
    """JIRA_ACCOUNT_ID: the Jira worker's account; unset, asked once from `GET /rest/api/3/myself`."""
    jira_base_url: str | None = None
    """JIRA_BASE_URL, JIRA_EMAIL, JIRA_API_TOKEN: the worker's account, for `myself`."""
    jira_email: str | None = None
    jira_api_token: Secret | None = None
    zendesk_email: str | None = None
    """ZENDESK_EMAIL: the worker's agent; a change it made is an echo."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TwoWaySettings:
        settings = cls(
            slack_signing_secret=env_secret(env, "SLACK_SIGNING_SECRET"),
            jira_webhook_secret=env_secret(env, "JIRA_WEBHOOK_SECRET"),
            zendesk_webhook_secret=env_secret(env, "ZENDESK_WEBHOOK_SECRET"),
            jira_account_id=env_str(env, "JIRA_ACCOUNT_ID"),
            jira_base_url=env_str(env, "JIRA_BASE_URL"),
            jira_email=env_str(env, "JIRA_EMAIL"),
            jira_api_token=env_secret(env, "JIRA_API_TOKEN"),
            zendesk_email=env_str(env, "ZENDESK_EMAIL"),
        )
        knows_jira_account = settings.jira_account_id or (
            settings.jira_base_url and settings.jira_email and settings.jira_api_token
        )
        if settings.jira_webhook_secret and not knows_jira_account:
            raise ConfigError(
                "JIRA_WEBHOOK_SECRET needs JIRA_ACCOUNT_ID, or JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN, "
                "to tell the worker's own changes (echoes) from people's"
            )
        if settings.zendesk_webhook_secret and not settings.zendesk_email:
            raise ConfigError("ZENDESK_WEBHOOK_SECRET needs ZENDESK_EMAIL, to tell the worker's own changes (echoes)")
        if settings.jira_base_url and not settings.jira_base_url.startswith(("https://", "http://")):
            raise ConfigError(f"JIRA_BASE_URL must be an http(s) URL, got {settings.jira_base_url!r}")
        return settings
