"""The API as an ASGI factory, for serving it under another server than `python -m services.api`'s uvicorn.

`granian --interface asgi --factory scripts.bench.asgi:create_app` (the benchmark's `--api-server granian`).
"""

from __future__ import annotations

import os

from litestar import Litestar

from services.api.app import create_app as build
from services.api.settings import ApiSettings
from shared.logging import configure_logging


def create_app() -> Litestar:
    settings = ApiSettings.from_env(os.environ)
    configure_logging("api", json=None if settings.log_format == "auto" else settings.log_format == "json")
    return build(settings)
