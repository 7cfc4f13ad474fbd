"""`python -m services.api`: load settings, configure logging, serve with uvicorn."""

from __future__ import annotations

import os

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.logging import configure_logging


def main() -> None:
    settings = ApiSettings.from_env(os.environ)
    json = None if settings.log_format == "auto" else settings.log_format == "json"
    configure_logging("api", json=json, level=settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        server_header=False,
    )


if __name__ == "__main__":
    main()
