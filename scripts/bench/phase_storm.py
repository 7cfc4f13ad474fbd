"""The alert-storm phase: Alertmanager v4 notifications at wrk -c32, first each for a new alert group, then
repeats over 100 open groups, in the same run. Per phase: notifications/s, SQL statements per notification
(MariaDB's global status counters), API CPU per notification (/proc), and whether every accepted
notification was counted (the sum of `alert_count` against the API's own count of 200 answers)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from scripts.bench.catchup import CatchUp, Probe
from scripts.bench.procstats import CpuWindow
from scripts.bench.target import Target
from scripts.bench.wrk import WrkResult
from tests.support.metrics import sample

PATH = "/integrations/alertmanager"
OPEN_GROUPS = 100
GROUP = "@GROUP@"
STATEMENTS = ("Questions", "Com_select", "Com_insert", "Com_update", "Com_delete", "Com_begin", "Com_commit")

# What Alertmanager 0.25 sends for a group of one alert (webhook payload version 4).
NOTIFICATION = {
    "receiver": "incidents",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": GROUP, "instance": "node-7:9100", "job": "node", "severity": "critical"},
            "annotations": {"summary": f"{GROUP} on node-7", "description": "Disk /var is 97% full."},
            "startsAt": "2026-12-05T04:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=node_filesystem_avail_bytes&g0.tab=1",
            "fingerprint": f"{GROUP}-fp",
        }
    ],
    "groupLabels": {"alertname": GROUP},
    "commonLabels": {"alertname": GROUP, "instance": "node-7:9100", "job": "node", "severity": "critical"},
    "commonAnnotations": {"summary": f"{GROUP} on node-7", "description": "Disk /var is 97% full."},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": f'{{}}:{{alertname="{GROUP}"}}',
    "truncatedAlerts": 0,
}

# Each request names its group: a new one per request, or one of the open groups at random.
_REQUEST = """
local parts = %(parts)s
local n = 0
request = function()
  n = n + 1
  local group = %(group)s
  return wrk.format(nil, nil, nil, table.concat(parts, group))
end
"""


def body(group: str) -> str:
    return json.dumps(NOTIFICATION).replace(GROUP, group)


def request_lua(group_expression: str) -> str:
    parts = json.dumps(NOTIFICATION).split(GROUP)
    lua_parts = "{" + ",".join(json.dumps(p) for p in parts) + "}"
    return _REQUEST % {"parts": lua_parts, "group": group_expression}


@dataclass
class StormLoad:
    wrk: WrkResult
    accepted: int
    """200 answers, counted by the API itself (its incidents_api_requests_total)."""
    statements: dict[str, int]
    """MariaDB's global counters over the load."""
    cpu_s: dict[str, float]
    """CPU seconds per process over the load alone."""
    catch_up: CatchUp

    @property
    def per_notification(self) -> dict[str, float | None]:
        n = self.accepted or 1
        return {
            "sql_statements": round(self.statements["Questions"] / n, 3),
            **{k.removeprefix("Com_"): round(v / n, 3) for k, v in self.statements.items() if k != "Questions"},
            "api_cpu_ms": round(1000 * self.cpu_s.get("api", 0.0) / n, 3),
            "mariadb_cpu_ms": round(1000 * self.cpu_s.get("mariadbd", 0.0) / n, 3),
            "all_cpu_ms": round(
                1000 * sum(v for k, v in self.cpu_s.items() if k not in ("others", "bench")) / n + 0.0, 3
            ),
        }

    def as_dict(self) -> dict[str, object]:
        return {
            **self.wrk.as_dict(),
            "accepted": self.accepted,
            "accepted_per_s": round(self.accepted / self.wrk.duration_s, 1) if self.wrk.duration_s else None,
            "statements": self.statements,
            "per_notification": self.per_notification,
            "cpu_s": self.cpu_s,
            "catch_up": self.catch_up.as_dict(),
        }


@dataclass
class StormPhase:
    new_groups: StormLoad
    repeats: StormLoad
    alert_count_sum: int
    accepted_total: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": f"POST {PATH}, Alertmanager v4 notifications of one alert, wrk (Lua builds each body)",
            "new_groups": self.new_groups.as_dict(),
            "repeats": {**self.repeats.as_dict(), "open_groups": OPEN_GROUPS},
            "alert_count_sum": self.alert_count_sum,
            "accepted_total": self.accepted_total,
            "method": "statements: MariaDB SHOW GLOBAL STATUS deltas over the load (Questions = every statement a "
            "client sent: BEGIN/COMMIT included, the relay's polling too); CPU: /proc utime+stime over the load; "
            "accepted: the API's incidents_api_requests_total for the route with status 200",
        }


async def run_storm_phase(target: Target) -> StormPhase:
    run = uuid.uuid4().hex[:6]  # group names of this run only
    accepted_before = await _accepted(target.api_url)
    new = await _load(target, f'"new-{run}-" .. n', "storm-new")
    async with httpx.AsyncClient(base_url=target.api_url, timeout=30) as http:
        for index in range(1, OPEN_GROUPS + 1):
            answer = await http.post(PATH, content=body(f"storm-{run}-{index}"), headers=_JSON)
            answer.raise_for_status()
    await target.probe.wait_drained(time.time(), target.options.catchup_timeout)
    repeats = await _load(target, f'"storm-{run}-" .. math.random(1, {OPEN_GROUPS})', "storm-repeats")
    accepted_total = await _accepted(target.api_url) - accepted_before
    [(total,)] = await target.probe.rows(
        "SELECT COALESCE(SUM(alert_count), 0) FROM incidents WHERE integration = 'alertmanager'"
    )
    return StormPhase(new, repeats, int(str(total)), accepted_total)


_JSON = {"Content-Type": "application/json"}


async def _load(target: Target, group_expression: str, label: str) -> StormLoad:
    accepted = await _accepted(target.api_url)
    counters = await _statements(target.probe)
    window = CpuWindow(target.pids).start()
    lua = request_lua(group_expression)
    result = await target.wrk.load(f"{target.api_url}{PATH}", body=body("unused"), label=label, request_lua=lua)
    cpu = window.stop(extra_s=result.wrk_cpu_s)
    after = await _statements(target.probe)
    done = await _accepted(target.api_url) - accepted
    catch_up = await target.probe.wait_drained(result.ended_at, target.options.catchup_timeout)
    return StormLoad(result, done, {k: after[k] - counters[k] for k in STATEMENTS}, cpu, catch_up)


async def _statements(probe: Probe) -> dict[str, int]:
    names = ",".join(f"'{name}'" for name in STATEMENTS)
    rows = await probe.rows(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
    found = {str(name): int(str(value)) for name, value in rows}
    return {name: found.get(name, 0) for name in STATEMENTS}


async def _accepted(api_url: str) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{api_url}/metrics")).text
    value = sample(text, "incidents_api_requests_total", path=PATH, status_code="200")
    return int(value or 0)
