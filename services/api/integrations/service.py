"""What an outside action does to an incident: the same domain calls as the API's own routes, with the
rules that keep vendors from undoing newer changes (stale clicks) and from acting twice (retries)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime

import httpx
import structlog

from services.api.incidents.domain import Incident, IncidentDeleted, Status
from services.api.incidents.events import Origin
from services.api.incidents.service import IncidentService, RequestKey
from services.api.integrations.settings import TwoWaySettings
from services.api.storage.repository import (
    NotFound,
    PreconditionFailed,
    SqlIncidentRepository,
    VersionConflict,
    fingerprint,
)
from shared.twoway import ButtonAction

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5
MYSELF_TIMEOUT_SECONDS = 5.0


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    """The action went through the domain (it may have found the incident already so)."""
    REPLAYED = "replayed"
    """The same delivery came before: nothing done again."""
    STALE = "stale"
    """The button was drawn before a newer change of the same state: nothing done."""
    UNKNOWN = "unknown"
    """No such incident (never was, or deleted)."""


class Target(enum.StrEnum):
    """What a Jira or Zendesk status asks of the incident."""

    RESOLVED = "resolved"
    REOPENED = "reopened"
    ACKNOWLEDGED = "acknowledged"


class IdentityUnavailable(RuntimeError):
    """The Jira worker's account could not be asked for: the webhook is answered "retry later"."""


# Event types (as the audit log names them) that a button drawn at an older version must not undo.
RELEVANT = {
    ButtonAction.ACKNOWLEDGE: frozenset({"acknowledged", "unacknowledged", "resolved", "reopened"}),
    ButtonAction.RESOLVE: frozenset({"resolved", "reopened"}),
    ButtonAction.REOPEN: frozenset({"resolved", "reopened"}),
}
DONE = {
    ButtonAction.ACKNOWLEDGE: "INCIDENT ACKNOWLEDGED",
    ButtonAction.RESOLVE: "INCIDENT RESOLVED",
    ButtonAction.REOPEN: "INCIDENT REOPENED",
    Target.ACKNOWLEDGED: "INCIDENT ACKNOWLEDGED",
    Target.RESOLVED: "INCIDENT RESOLVED",
    Target.REOPENED: "INCIDENT REOPENED",
}


def acknowledge_open(incident: Incident, now: datetime) -> None:
    """Acknowledging concerns open incidents: a late acknowledgement leaves a resolved one as it is."""
    if incident.status is Status.UNRESOLVED:
        incident.acknowledge(now)


MUTATIONS: dict[str, Callable[[Incident, datetime], None]] = {
    ButtonAction.ACKNOWLEDGE: acknowledge_open,
    ButtonAction.RESOLVE: lambda incident, now: incident.resolve(now),
    ButtonAction.REOPEN: lambda incident, now: incident.reopen(now),
    Target.ACKNOWLEDGED: acknowledge_open,
    Target.RESOLVED: lambda incident, now: incident.resolve(now),
    Target.REOPENED: lambda incident, now: incident.reopen(now),
}


def delivery_key(vendor: str, delivery: str | None) -> RequestKey | None:
    """The vendor's delivery id as an idempotency key: a retry of the same delivery acts once."""
    if not delivery:
        return None
    key = f"{vendor}:{delivery}"[:255]
    return RequestKey(key, fingerprint(key))


class OutsideActions:
    def __init__(self, repo: SqlIncidentRepository, incidents: IncidentService) -> None:
        self.repo = repo
        self.incidents = incidents

    async def click(
        self, incident_id: int, drawn_version: int, action: ButtonAction, origin: Origin, key: RequestKey | None
    ) -> Outcome:
        """A Slack button drawn at `drawn_version`: acts only if no change of the same state came after it."""
        for _ in range(MAX_ATTEMPTS):
            versions = await self.repo.versions_since(incident_id, sorted(RELEVANT[action]))
            if versions is None or versions[2]:
                return Outcome.UNKNOWN
            current, last_relevant, _ = versions
            if last_relevant > drawn_version:
                # A newer change of that state, or this very click delivered again (then it was stored).
                if key is not None and await self.repo.stored_response(key.key, key.fingerprint) is not None:
                    return Outcome.REPLAYED
                return Outcome.STALE
            try:
                answer = await self.incidents.change(
                    incident_id, MUTATIONS[action], DONE[action], origin, expected_version=current, key=key
                )
            except PreconditionFailed:
                continue  # changed between the read and the write: look again
            except (NotFound, IncidentDeleted):
                return Outcome.UNKNOWN
            return Outcome.REPLAYED if answer.replayed else Outcome.APPLIED
        raise VersionConflict(f"incident {incident_id} changed too often, try again")

    async def set_state(self, incident_id: int, target: Target, origin: Origin, key: RequestKey | None) -> Outcome:
        """A status that changed in Jira or Zendesk, applied to the incident as it is now."""
        try:
            answer = await self.incidents.change(incident_id, MUTATIONS[target], DONE[target], origin, key=key)
        except (NotFound, IncidentDeleted):
            return Outcome.UNKNOWN
        return Outcome.REPLAYED if answer.replayed else Outcome.APPLIED


class JiraIdentity:
    """The Jira worker's account id: JIRA_ACCOUNT_ID, or asked once from `GET /rest/api/3/myself`."""

    def __init__(self, settings: TwoWaySettings) -> None:
        self.settings = settings
        self.account_id = settings.jira_account_id

    async def own_account(self) -> str:
        if self.account_id:
            return self.account_id
        settings = self.settings
        if not (settings.jira_base_url and settings.jira_email and settings.jira_api_token):
            raise IdentityUnavailable("JIRA_ACCOUNT_ID or the Jira worker's credentials are not set")
        url = settings.jira_base_url.rstrip("/") + "/rest/api/3/myself"
        try:
            async with httpx.AsyncClient(timeout=MYSELF_TIMEOUT_SECONDS, trust_env=False) as client:
                response = await client.get(
                    url,
                    auth=(settings.jira_email, settings.jira_api_token.reveal()),
                    headers={"Accept": "application/json"},
                )
            account = response.json().get("accountId") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise IdentityUnavailable(f"GET /rest/api/3/myself failed: {type(exc).__name__}") from None
        if not isinstance(account, str) or not account:
            raise IdentityUnavailable(f"GET /rest/api/3/myself answered {response.status_code} without an accountId")
        log.info("jira worker account known", account_id=account)
        self.account_id = account
        return account
