"""Workers are found by name through the `incidents.workers` entry point group."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import cast

from services.workers.base import WorkerFactory

GROUP = "incidents.workers"


class UnknownWorkerError(LookupError):
    """No entry point of that name."""


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def known_workers() -> list[str]:
    return sorted(_entry_points())


def load_worker(name: str) -> WorkerFactory:
    found = _entry_points().get(name)
    if found is None:
        known = ", ".join(known_workers()) or "none (is the package installed? pip install -e .)"
        raise UnknownWorkerError(f"unknown worker {name!r}; known workers: {known}")
    factory = cast(WorkerFactory, found.load())
    if getattr(factory, "name", None) != name:
        raise UnknownWorkerError(f"entry point {name!r} loads {factory!r}, whose name is not {name!r}")
    return factory
