"""Turn alerts into incidents: one open incident per dedup key, repeats counted on it without events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from services.api.db import UNAVAILABLE_ERRORS
from services.api.domain import AlertFields, Incident
from services.api.events import EventRecorder, Origin
from services.api.intake import alertmanager
from services.api.repository import DedupKeyInUse, IncidentRepository, NotFound, VersionConflict
from services.api.settings import ALERTMANAGER_INTEGRATION
from shared.events import utcnow

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Outcome:
    incident_id: int | None
    created: bool = False
    changed: bool = False


class AlertIntake:
    def __init__(self, repo: IncidentRepository, clock: Callable[[], datetime] = utcnow) -> None:
        self.repo = repo
        self.clock = clock

    async def trigger(
        self,
        message: str,
        alert: AlertFields,
        origin: Origin,
        *,
        integration: str,
        firing: frozenset[str] = frozenset(),
    ) -> Outcome:
        """Open an incident for the key, or count the alert on the one open for it."""
        key = alert.dedup_key
        assert key is not None
        for _ in range(MAX_ATTEMPTS):
            now = self.clock()
            existing = await self.repo.find_open(key)
            if existing is not None:
                if await self.repo.record_alert(existing, key, now):
                    return Outcome(existing)
                continue  # resolved in between: open a new one
            incident = Incident.open(message, now, alert)
            incident.firing, incident.alert_count, incident.last_alert_at = firing, 1, now
            incident.integration = integration
            try:
                await self.repo.add(incident, EventRecorder(origin))
            except DedupKeyInUse:
                continue  # another trigger opened it first: count ours on it
            log.info("incident opened from an alert", incident_id=incident.id, dedup_key=key)
            return Outcome(incident.id, created=True, changed=True)
        raise VersionConflict(f"dedup_key {key!r} changed too often, try again")

    async def act(self, key: str, origin: Origin, action: Callable[[Incident, datetime], None]) -> Outcome:
        """Apply an action to the open incident holding the key; nothing when none is open (as PagerDuty)."""
        for _ in range(MAX_ATTEMPTS):
            incident_id = await self.repo.find_open(key)
            if incident_id is None:
                return Outcome(None)

            def mutate(incident: Incident) -> None:
                if incident.open_dedup_key != key:
                    raise _Moved()
                action(incident, self.clock())

            try:
                changed = await self.repo.change(incident_id, mutate, EventRecorder(origin))
            except (_Moved, NotFound):
                continue
            return Outcome(incident_id, changed=bool(changed.changes))
        raise VersionConflict(f"dedup_key {key!r} changed too often, try again")

    async def notification(self, note: alertmanager.Notification, origin: Origin) -> Outcome:
        """An Alertmanager group notification: open, track joins and resolves, or resolve."""
        fields = alertmanager.alert_fields(note)
        key = fields.dedup_key
        assert key is not None
        described = alertmanager.describe(note)
        if note.status == "resolved":
            return await self.act(key, origin, lambda incident, now: incident.resolve(now))
        firing = alertmanager.firing(note)
        outcome = await self.trigger(
            alertmanager.message(note), fields, origin, integration=ALERTMANAGER_INTEGRATION, firing=firing
        )
        if outcome.created or outcome.incident_id is None:
            return outcome

        def track(incident: Incident, now: datetime) -> None:
            # With alerts left out (truncatedAlerts), a missing alert is not a resolved one.
            now_firing = firing | incident.firing if note.truncatedAlerts else firing
            if incident.firing == now_firing:
                return  # a retried or repeated notification: nothing new
            joined = [described.get(k, k) for k in sorted(now_firing - incident.firing)]
            resolved = [described.get(k, k) for k in sorted(incident.firing - now_firing)]
            incident.track_alerts(now_firing, joined, resolved, now)

        return await self.act(key, origin, track)

    async def resolve_quiet(
        self,
        integration: str,
        quiet_for: timedelta,
        origin: Origin,
        on_error: Callable[[int, BaseException], None] | None = None,
    ) -> int:
        """Auto-resolve the integration's open incidents with no alert for `quiet_for`; returns how many.

        An incident that fails is told to `on_error` (or raised without it) and the others go on; a database
        that can't be reached ends the round.
        """
        resolved = 0
        quiet_since = self.clock() - quiet_for
        for incident_id in await self.repo.quiet_alerts(integration, quiet_since):
            # Re-checked inside the write: an alert or a human that got there first wins.

            def quiet(incident: Incident) -> None:
                incident.resolve_when_quiet(quiet_since, self.clock())

            try:
                changed = await self.repo.change(incident_id, quiet, EventRecorder(origin))
            except NotFound:
                continue  # deleted meanwhile
            except UNAVAILABLE_ERRORS:
                raise
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(incident_id, exc)
                continue
            if changed.changes:
                resolved += 1
                log.info("incident auto-resolved", incident_id=incident_id, integration=integration)
        return resolved


class _Moved(Exception):
    """The incident no longer holds the key (resolved or re-keyed in between)."""
