"""The event handler's /metrics: how many events each relay request carried (the outbox batch actually used)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass
class PublishCounts:
    requests: int
    events: int

    def minus(self, before: PublishCounts) -> dict[str, float | int | None]:
        requests = self.requests - before.requests
        events = self.events - before.events
        return {
            "publish_requests": requests,
            "events": events,
            "mean_batch": round(events / requests, 1) if requests else None,
        }


async def publish_counts(metrics_url: str) -> PublishCounts:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(metrics_url)).text
    requests = events = 0
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        if (
            name.startswith(("eventhandler_requests_total", "incidents_eventhandler_requests_total"))
            and 'endpoint="publish"' in name
        ):
            requests += int(float(value))
        elif name.startswith(("eventhandler_events_published_total", "incidents_eventhandler_events_published_total")):
            events += int(float(value))
    return PublishCounts(requests, events)
