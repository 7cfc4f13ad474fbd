"""An alert storm beside the action mix: Alertmanager group notifications and Events v2 triggers, mostly
repeats of a few open groups, some alerts joining and leaving, now and then a resolve; and what must hold
after it: every accepted alert counted once (a lost answer may or may not have counted)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

from services.api.storage.db import Db
from services.api.storage.tables import incidents

INTEGRATION = "soak-storm"
ROUTING_KEY = "soak-storm-routing-key-00000000001"
ALERTMANAGER = "alertmanager"


@dataclass(frozen=True)
class StormPlan:
    rate: float = 200.0
    """Notifications per second, both kinds together."""
    groups: int = 50
    """Open alert groups per kind that the repeats go to."""
    seconds: float | None = None
    """How long it lasts; None: as long as the action mix (until stopped)."""
    clients: int = 8
    resolve_share: float = 0.01
    join_share: float = 0.05
    """Alertmanager: share of notifications where a second alert fires in the group (a join, then a leave)."""
    seed: int = 1


@dataclass
class StormStats:
    counted: int = 0
    """Firing notifications and triggers answered 2xx: each must be counted once in `alert_count`."""
    unknown: int = 0
    """Sent and the answer lost (the API was killed): counted or not."""
    resolves: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "counted": self.counted,
            "unknown": self.unknown,
            "resolves": self.resolves,
            "outcomes": dict(self.outcomes),
        }


class AlertStorm:
    def __init__(self, api_url: str, plan: StormPlan) -> None:
        self.api_url = api_url
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.stats = StormStats()
        self._slot = 0

    def request(self) -> tuple[str, str, dict[str, Any]]:
        """(kind, path, body): a firing notification or trigger, or a resolve."""
        rng, plan = self.rng, self.plan
        group = rng.randrange(plan.groups)
        resolve = rng.random() < plan.resolve_share
        if rng.random() < 0.5:
            alerts = ["a", "b"] if rng.random() < plan.join_share else ["a"]
            return (
                ("resolve" if resolve else "fire"),
                "/integrations/alertmanager",
                _notification(group, alerts, resolve),
            )
        event: dict[str, Any] = {
            "routing_key": ROUTING_KEY,
            "event_action": "resolve" if resolve else "trigger",
            "dedup_key": f"storm-{group}",
        }
        if not resolve:
            event["payload"] = {"summary": f"storm {group}", "source": f"host-{group}", "severity": "error"}
        return ("resolve" if resolve else "fire"), "/v2/enqueue", event

    async def run(self, stop: asyncio.Event) -> StormStats:
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self.api_url, timeout=10) as http:
            await asyncio.gather(*(self._client(http, started, stop) for _ in range(self.plan.clients)))
        return self.stats

    async def _client(self, http: httpx.AsyncClient, started: float, stop: asyncio.Event) -> None:
        seconds = self.plan.seconds
        while not stop.is_set() and (seconds is None or time.monotonic() - started < seconds):
            slot, self._slot = self._slot, self._slot + 1
            due = started + slot / self.plan.rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # the schedule: `rate` notifications per second
            kind, path, body = self.request()
            try:
                response = await http.post(path, json=body)
            except httpx.ConnectError:
                self.stats.outcomes["refused"] += 1
                await asyncio.sleep(0.2)
                continue
            except httpx.HTTPError:
                self.stats.outcomes["unknown"] += 1
                self.stats.unknown += kind == "fire"
                continue
            self.stats.outcomes[f"{kind}:{response.status_code}"] += 1
            if response.is_success:
                self.stats.counted += kind == "fire"
                self.stats.resolves += kind == "resolve"


async def check(database_url: str, stats: StormStats) -> str | None:
    """What went wrong with the storm's counts, or None."""
    db = Db(database_url)
    await db.connect()
    try:
        total = await db.database.fetch_val(
            sa.select(sa.func.coalesce(sa.func.sum(incidents.c.alert_count), 0)).where(
                incidents.c.integration.in_([INTEGRATION, ALERTMANAGER])
            )
        )
    finally:
        await db.disconnect()
    counted = int(total or 0)
    if not stats.counted <= counted <= stats.counted + stats.unknown:
        return (
            f"alert storm: alert_count adds up to {counted}, expected {stats.counted} accepted alerts "
            f"(+ up to {stats.unknown} whose answer was lost)"
        )
    return None


def _notification(group: int, alerts: list[str], resolved: bool) -> dict[str, Any]:
    name = f"Storm{group}"
    status = "resolved" if resolved else "firing"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": status,
        "receiver": "incidents",
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name, "severity": "warning"},
        "commonAnnotations": {"summary": f"{name} is firing"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": name, "instance": f"node-{alert}"},
                "annotations": {},
                "fingerprint": f"{name}-{alert}",
            }
            for alert in alerts
        ],
    }
