"""Jira worker settings, read from the contract's environment variables."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from services.workers.settings import DEFAULT_CREATE_GRACE, env_create_grace
from shared.config import ConfigError, Secret, env_float, env_secret, env_str

# Shown in dry-run logs when no site is configured.
PLACEHOLDER_BASE_URL = "https://your-site.atlassian.net"


class JiraSettings(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str = PLACEHOLDER_BASE_URL
    """JIRA_BASE_URL, e.g. https://acme.atlassian.net"""
    email: str | None = None
    """JIRA_EMAIL: the account the API token belongs to."""
    api_token: Secret | None = None
    """JIRA_API_TOKEN"""
    project_key: str = "INC"
    """JIRA_PROJECT_KEY"""
    issue_type: str = "Task"
    """JIRA_ISSUE_TYPE"""
    done_transition: str = "Done"
    """JIRA_DONE_TRANSITION: the transition taken on resolve and delete."""
    reopen_transition: str = "To Do"
    """JIRA_REOPEN_TRANSITION: the transition taken on reopen."""
    search_lag: float = 60.0
    """JIRA_SEARCH_LAG_SECONDS: how long a new issue may be missing from search results."""

    create_grace: float = DEFAULT_CREATE_GRACE
    """WORKER_CREATE_GRACE_SECONDS: wait before creating again after a create of unknown outcome."""

    @property
    def dry_run(self) -> bool:
        return self.email is None or self.api_token is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JiraSettings:
        email, token = env_str(env, "JIRA_EMAIL"), env_secret(env, "JIRA_API_TOKEN")
        base_url, project = env_str(env, "JIRA_BASE_URL"), env_str(env, "JIRA_PROJECT_KEY")
        if bool(email) != bool(token):
            raise ConfigError("JIRA_EMAIL and JIRA_API_TOKEN must be set together")
        if email and not (base_url and project):
            raise ConfigError("JIRA_BASE_URL and JIRA_PROJECT_KEY are required when Jira credentials are set")
        if base_url and not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"JIRA_BASE_URL must be an http(s) URL, got {base_url!r}")
        d = cls()
        return cls(
            base_url=base_url or d.base_url,
            email=email,
            api_token=token,
            project_key=project or d.project_key,
            issue_type=env_str(env, "JIRA_ISSUE_TYPE", d.issue_type) or d.issue_type,
            done_transition=env_str(env, "JIRA_DONE_TRANSITION", d.done_transition) or d.done_transition,
            reopen_transition=env_str(env, "JIRA_REOPEN_TRANSITION", d.reopen_transition) or d.reopen_transition,
            search_lag=env_float(env, "JIRA_SEARCH_LAG_SECONDS", d.search_lag),
            create_grace=env_create_grace(env),
        )
