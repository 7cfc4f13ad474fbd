"""A small Prometheus registry (counters, gauges, histograms) rendered in the text exposition format."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _render_labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = _labels(labels)
        self.values[key] = self.values.get(key, 0) + amount

    def value(self, **labels: str) -> float:
        return self.values.get(_labels(labels), 0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        return lines + [f"{self.name}{_render_labels(k)} {v:g}" for k, v in sorted(self.values.items())]


class Gauge:
    """A gauge whose value is read on scrape."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float | None]) -> None:
        self.name, self.help, self.read = name, help_text, read

    def render(self) -> list[str]:
        value = self.read()
        if value is None:
            return []
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge", f"{self.name} {value:g}"]


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.series: dict[Labels, list[float]] = {}  # bucket counts..., sum, count

    def observe(self, seconds: float, **labels: str) -> None:
        key = _labels(labels)
        series = self.series.setdefault(key, [0.0] * (len(self.buckets) + 2))
        index = bisect_left(self.buckets, seconds)
        if index < len(self.buckets):
            series[index] += 1
        series[-2] += seconds
        series[-1] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, series in sorted(self.series.items()):
            cumulative = 0.0
            for bound, count in zip(self.buckets, series, strict=False):
                cumulative += count
                bucket = _render_labels(key, 'le="' + format(bound, "g") + '"')
                lines.append(f"{self.name}_bucket{bucket} {cumulative:g}")
            inf = _render_labels(key, 'le="+Inf"')
            lines.append(f"{self.name}_bucket{inf} {series[-1]:g}")
            lines.append(f"{self.name}_sum{_render_labels(key)} {series[-2]:.6f}")
            lines.append(f"{self.name}_count{_render_labels(key)} {series[-1]:g}")
        return lines


class Registry:
    def __init__(self) -> None:
        self.metrics: list[Counter | Gauge | Histogram] = []

    def counter(self, name: str, help_text: str) -> Counter:
        metric = Counter(name, help_text)
        self.metrics.append(metric)
        return metric

    def gauge(self, name: str, help_text: str, read: Callable[[], float | None]) -> Gauge:
        metric = Gauge(name, help_text, read)
        self.metrics.append(metric)
        return metric

    def histogram(self, name: str, help_text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
        metric = Histogram(name, help_text, buckets)
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics:
            lines += metric.render()
        return "\n".join(lines) + "\n"
