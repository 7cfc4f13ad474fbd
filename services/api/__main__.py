"""`python -m services.api`: load settings, configure logging, serve with uvicorn.

uvicorn, not granian: measured in the same `just bench` runs, granian's API cost more CPU per created
incident (0.51 ms against 0.39 ms), and uvicorn drains on SIGTERM (tests/e2e/test_api_shutdown.py).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from types import FrameType

import uvicorn

from services.api.app import build_components, create_app
from services.api.console.live import LiveFeed
from services.api.settings import ApiSettings
from shared.heap import freeze_startup_objects
from shared.logging import configure_logging
from shared.tracing import configure_tracing


class ApiServer(uvicorn.Server):
    """uvicorn waits for open responses before it stops; the console's endless streams are ended at once.
    Start-up objects are frozen out of the garbage collector once the app has started."""

    def __init__(self, config: uvicorn.Config, live: LiveFeed) -> None:
        super().__init__(config)
        self.live = live

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.live.close()
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Connecting to the database and NATS imported and built more (≈ 35,000 objects): out of the
        # collector's sight too, or every full pass walks them again.
        freeze_startup_objects()


def main() -> None:
    settings = ApiSettings.from_env(os.environ)
    json = None if settings.log_format == "auto" else settings.log_format == "json"
    configure_logging("api", json=json, level=settings.log_level)
    configure_tracing("incidents-api")
    components = build_components(settings)
    config = uvicorn.Config(
        create_app(settings, components),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        server_header=False,
        limit_concurrency=settings.max_concurrency,  # past it uvicorn answers 503 instead of taking more
    )
    # uvicorn drains, then re-raises the signal it caught: ending here makes that a clean exit (0).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    ApiServer(config, components.live).run()


def _exit_cleanly(_signal: int, _frame: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    main()
