"""`python -m services.eventhandler`: read settings, configure logging, run until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from services.eventhandler.app import run
from services.eventhandler.settings import Settings
from shared.config import ConfigError
from shared.logging import configure_logging


async def main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop)


def cli() -> None:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        sys.exit(f"eventhandler: bad configuration: {exc}")
    configure_logging("eventhandler", json=settings.log_json, level=settings.log_level)
    asyncio.run(main(settings))


if __name__ == "__main__":
    cli()
