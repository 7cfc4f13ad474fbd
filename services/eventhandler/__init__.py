"""The event handler: stores incident events on JetStream and manages subscriptions and dead letters."""

from __future__ import annotations

from services.eventhandler.app import run
from services.eventhandler.settings import Settings

__all__ = ["Settings", "run"]
