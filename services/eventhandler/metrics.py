"""Counters the health server exposes in the Prometheus text format."""

from __future__ import annotations

from collections import Counter

_HELP = {
    "eventhandler_events_published_total": "Events JetStream stored (duplicates included), by type.",
    "eventhandler_events_duplicate_total": "Events JetStream had already stored (Nats-Msg-Id), by type.",
    "eventhandler_publish_failures_total": "Events not stored (failed or not attempted), by type.",
    "eventhandler_events_rejected_total": "Invalid events rejected by the publish endpoint.",
    "eventhandler_requests_total": "Micro service requests, by endpoint and reply code.",
    "eventhandler_deadletters_total": "Messages dead-lettered, by worker and reason.",
    "eventhandler_deadletter_failures_total": "Advisories that could not be dead-lettered (lost).",
    "eventhandler_redriven_total": "Dead letters put back on INCIDENTS, by worker.",
}


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[str, Counter[tuple[tuple[str, str], ...]]] = {name: Counter() for name in _HELP}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._counters[name][tuple(sorted(labels.items()))] += amount

    def value(self, name: str, **labels: str) -> int:
        return self._counters[name][tuple(sorted(labels.items()))]

    def render(self) -> str:
        lines: list[str] = []
        for name, counter in self._counters.items():
            lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} counter"]
            for labels, value in sorted(counter.items()):
                rendered = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
                lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
