"""What a worker is: one outside system that brings an incident's record up to an event's snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol

from services.workers.http import Sender
from services.workers.records import IncidentRecord
from shared.events import CloudEvent


class SyncContext(Protocol):
    """What the runner lends a worker while it holds the incident's lease."""

    async def save(self, record: IncidentRecord) -> IncidentRecord:
        """Persist progress (and renew the lease) before and after each outside call unsafe to repeat.

        Raises RetryableError when the lease was lost to another replica.
        """
        ...


class Worker(Protocol):
    """One outside system. The runner owns the transport, the record store and the lease."""

    name: ClassVar[str]

    @property
    def dry_run(self) -> bool:
        """True when credentials are unset: requests are logged, not sent."""
        ...

    async def sync(self, event: CloudEvent, record: IncidentRecord, ctx: SyncContext) -> IncidentRecord:
        """Make the outside object match `event.data.incident`; return the record of what is there now.

        Raise RetryableError / PermanentError (services.workers.errors) to have the event
        redelivered later or dead-lettered.
        """
        ...


class WorkerFactory(Protocol):
    """The class an `incidents.workers` entry point names (its `from_env` is a classmethod)."""

    name: str

    def from_env(self, env: Mapping[str, str], client: Sender) -> Worker:
        """Read this worker's settings (the contract's env names) and build it; ConfigError if bad."""
        ...
