"""`python -m services.workers NAME` runs one worker; `--list` shows the registered ones."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from services.workers.app import serve
from services.workers.registry import UnknownWorkerError, known_workers, load_worker
from services.workers.settings import ServiceSettings
from shared.config import ConfigError
from shared.eventloop import loop_factory
from shared.heap import freeze_startup_objects
from shared.logging import configure_logging
from shared.tracing import configure_tracing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.workers", description=__doc__)
    parser.add_argument("name", nargs="?", help="the worker to run, e.g. jira")
    parser.add_argument("--list", action="store_true", help="list the registered workers and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(known_workers()))
        return 0
    if not args.name:
        parser.error("name a worker to run, or pass --list")
    try:
        factory = load_worker(args.name)
        settings = ServiceSettings.from_env(os.environ)
    except (UnknownWorkerError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(f"worker-{args.name}", json=settings.log_json, level=settings.log_level)
    configure_tracing(f"incidents-worker-{args.name}")
    freeze_startup_objects()
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(serve(factory, os.environ, settings))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
