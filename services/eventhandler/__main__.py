"""`python -m services.eventhandler`: read settings, configure logging, run until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import structlog

from services.eventhandler.app import run
from services.eventhandler.settings import Settings
from shared.config import ConfigError
from shared.eventloop import loop_factory
from shared.heap import freeze_startup_objects
from shared.logging import configure_logging
from shared.tracing import configure_tracing

log = structlog.get_logger(__name__)


async def main(settings: Settings) -> None:
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.current_task()
    assert task is not None

    def on_signal() -> None:
        stop.set()
        if not started.is_set():
            task.cancel()  # still waiting for NATS: there is nothing to drain yet

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await run(settings, stop, started)
    except asyncio.CancelledError:
        if started.is_set() or not stop.is_set():
            raise
        log.info("eventhandler stopped before it had started")


def cli() -> None:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        sys.exit(f"eventhandler: bad configuration: {exc}")
    configure_logging("eventhandler", json=settings.log_json, level=settings.log_level)
    configure_tracing("incidents-eventhandler")
    try:
        freeze_startup_objects()
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main(settings))
    except ConfigError as exc:  # the subscriptions file, read when the service starts
        sys.exit(f"eventhandler: bad configuration: {exc}")


if __name__ == "__main__":
    cli()
