"""Prometheus metrics on `prometheus_client`: a small façade with the call shapes every service uses.

`counter.inc(amount, **labels)`, `histogram.observe(seconds, **labels)` and gauges read on scrape. Each
service owns one registry (so tests can build several in one process) with process metrics included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Histogram as _Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Counter:
    def __init__(self, registry: CollectorRegistry, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name = name.removesuffix("_total")
        self._registry = registry
        self._labels = tuple(labels)
        self._metric = _Counter(self.name, help_text, labelnames=self._labels, registry=registry)

    def inc(self, amount: float = 1, **labels: str) -> None:
        if self._labels:
            self._metric.labels(**labels).inc(amount)
        else:
            self._metric.inc(amount)

    def value(self, **labels: str) -> float:
        return self._registry.get_sample_value(self.name + "_total", labels) or 0.0


class Histogram:
    def __init__(
        self, registry: CollectorRegistry, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self._labels = tuple(labels)
        self._metric = _Histogram(name, help_text, labelnames=self._labels, buckets=buckets, registry=registry)

    def observe(self, seconds: float, **labels: str) -> None:
        if self._labels:
            self._metric.labels(**labels).observe(seconds)
        else:
            self._metric.observe(seconds)


class _ReadOnScrape(Collector):
    """Gauges whose value is read when Prometheus scrapes; a gauge that reads None is left out."""

    def __init__(self) -> None:
        self.gauges: list[tuple[str, str, Callable[[], float | None]]] = []
        self.labelled: list[tuple[str, str, str, Callable[[], Iterable[tuple[str, float]]]]] = []

    def collect(self) -> Iterator[Metric]:
        for name, help_text, read in self.gauges:
            value = read()
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=value)
        for name, help_text, label, read_all in self.labelled:
            family = GaugeMetricFamily(name, help_text, labels=[label])
            for label_value, value in read_all():
                family.add_metric([label_value], value)
            yield family


class Registry:
    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process:  # process_*, python_info and python_gc_*: free with prometheus_client
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._on_scrape = _ReadOnScrape()
        self.registry.register(self._on_scrape)

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(self.registry, name, help_text, labels)

    def gauge(self, name: str, help_text: str, read: Callable[[], float | None]) -> None:
        self._on_scrape.gauges.append((name, help_text, read))

    def labelled_gauge(
        self, name: str, help_text: str, label: str, read: Callable[[], Iterable[tuple[str, float]]]
    ) -> None:
        self._on_scrape.labelled.append((name, help_text, label, read))

    def histogram(
        self, name: str, help_text: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(self.registry, name, help_text, labels, buckets)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
