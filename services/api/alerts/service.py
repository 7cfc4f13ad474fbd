"""Turn alerts into incidents: one open incident per dedup key, repeats counted on it without events."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from services.api.alerts import alertmanager
from services.api.incidents.domain import AlertFields, Incident, firing_after
from services.api.incidents.events import EventRecorder, Origin
from services.api.settings import ALERTMANAGER_INTEGRATION
from services.api.storage.db import UNAVAILABLE_ERRORS
from services.api.storage.repository import (
    AlertRepeat,
    DedupKeyInUse,
    IncidentRepository,
    NotFound,
    Repeated,
    VersionConflict,
)
from shared.events import utcnow

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 8
MAX_OWNER_LENGTH = 255  # the dedup_owner column; longer owners are hashed


@dataclass(frozen=True, slots=True)
class GroupAlerts:
    """What an Alertmanager notification says of its group's alerts."""

    firing: frozenset[str]
    partial: bool
    """truncatedAlerts: alerts were left out."""
    described: dict[str, str]
    """Each alert's line for the incident's comments."""


@dataclass(frozen=True, slots=True)
class Outcome:
    incident_id: int | None
    created: bool = False
    changed: bool = False


def integration_owner(name: str) -> str:
    """The owner of the dedup keys an Events v2 integration (a name from INTEGRATION_KEYS) sends."""
    return _bounded(name)


def alertmanager_owner(token_name: str) -> str:
    """The owner of the group keys an Alertmanager sends: the token it authenticates with. Integration names
    hold no ':', so the two kinds never share an owner."""
    return _bounded(f"{ALERTMANAGER_INTEGRATION}:{token_name}")


def _bounded(owner: str) -> str:
    if len(owner) <= MAX_OWNER_LENGTH:
        return owner
    return "sha256:" + hashlib.sha256(owner.encode()).hexdigest()


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
        owner: str,
        group: GroupAlerts | None = None,
        seen_first: Repeated | None = None,
    ) -> Outcome:
        """Open an incident for the key, or count the alert on the one open for it (with an Alertmanager
        `group`: note the alerts that joined or resolved). `seen_first`: the caller tried it as a repeat."""
        key = alert.dedup_key
        assert key is not None
        firing = group.firing if group is not None else None
        partial = group.partial if group is not None else False
        for _ in range(MAX_ATTEMPTS):
            now = self.clock()
            if seen_first is not None:
                seen, seen_first = seen_first, None
            else:
                seen = await self.repo.repeat_alert(AlertRepeat(owner, key, now, firing, partial))
            if seen.counted:
                return Outcome(seen.incident_id)
            if seen.incident_id is not None:
                assert group is not None
                tracked = await self._track(seen.incident_id, owner, key, group, origin)
                if tracked is not None:
                    return tracked
                continue  # resolved in between, or tracked by another notification: start again
            incident = Incident.open(message, now, alert)
            incident.firing, incident.alert_count, incident.last_alert_at = firing or frozenset(), 1, now
            incident.integration, incident.dedup_owner = integration, owner
            try:
                await self.repo.add(incident, EventRecorder(origin))
            except DedupKeyInUse:
                continue  # another trigger opened it first: count ours on it
            log.info("incident opened from an alert", incident_id=incident.id, dedup_key=key)
            return Outcome(incident.id, created=True, changed=True)
        raise VersionConflict(f"dedup_key {key!r} changed too often, try again")

    async def _track(
        self, incident_id: int, owner: str, key: str, group: GroupAlerts, origin: Origin
    ) -> Outcome | None:
        """Count the notification and note the alerts that joined or resolved; None when the incident no
        longer holds the key or nothing changed after all."""

        def track(incident: Incident) -> None:
            if incident.open_dedup_key != key or incident.dedup_owner != owner:
                raise _Moved()
            now_firing = firing_after(incident.firing, group.firing, group.partial)
            if now_firing == incident.firing:
                raise _Moved()  # another notification got there first: count this one as a repeat
            joined = [group.described.get(k, k) for k in sorted(now_firing - incident.firing)]
            resolved = [group.described.get(k, k) for k in sorted(incident.firing - now_firing)]
            now = self.clock()
            incident.track_alerts(now_firing, joined, resolved, now)
            incident.count_alert(now)

        try:
            changed = await self.repo.change(incident_id, track, EventRecorder(origin))
        except (_Moved, NotFound):
            return None
        return Outcome(incident_id, changed=bool(changed.changes))

    async def act(self, owner: str, key: str, origin: Origin, action: Callable[[Incident, datetime], None]) -> Outcome:
        """Apply an action to the owner's open incident holding the key; nothing when none is open (as
        PagerDuty)."""
        for _ in range(MAX_ATTEMPTS):
            incident_id = await self.repo.find_open(owner, key)
            if incident_id is None:
                return Outcome(None)

            def mutate(incident: Incident) -> None:
                if incident.open_dedup_key != key or incident.dedup_owner != owner:
                    raise _Moved()
                action(incident, self.clock())

            try:
                changed = await self.repo.change(incident_id, mutate, EventRecorder(origin))
            except (_Moved, NotFound):
                continue
            return Outcome(incident_id, changed=bool(changed.changes))
        raise VersionConflict(f"dedup_key {key!r} changed too often, try again")

    async def notification(self, note: alertmanager.Notification, origin: Origin) -> Outcome:
        """An Alertmanager group notification: open, track joins and resolves, or resolve. The group key
        belongs to the token that sent it (`origin.actor`)."""
        key = alertmanager.dedup_key(note)
        owner = alertmanager_owner(origin.actor)
        if note.status == "resolved":
            return await self.act(owner, key, origin, lambda incident, now: incident.resolve(now))
        # An alert storm is mostly repeats: try it as one before building what only a new or changed group needs.
        firing, partial = alertmanager.firing(note), bool(note.truncatedAlerts)
        seen = await self.repo.repeat_alert(AlertRepeat(owner, key, self.clock(), firing, partial))
        if seen.counted:
            return Outcome(seen.incident_id)
        group = GroupAlerts(firing, partial, alertmanager.describe(note))
        return await self.trigger(
            alertmanager.message(note),
            alertmanager.alert_fields(note),
            origin,
            integration=ALERTMANAGER_INTEGRATION,
            owner=owner,
            group=group,
            seen_first=seen,
        )

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
