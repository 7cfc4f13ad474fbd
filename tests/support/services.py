"""Our services as real processes (`python -m services.<name>`), with their environment and logs."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.polling import eventually_sync
from tests.support.processes import Process, answers_ok_sync, free_port


def service_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIRA_", "SLACK_", "ZENDESK_", "API_TOKENS"))}
    env.update(LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


class ApiProcess:
    def __init__(self, workdir: Path, database_url: str, nats_url: str, extra: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.env = service_env(
            DATABASE_URL=database_url, NATS_URL=nats_url, API_HOST="127.0.0.1", API_PORT=str(self.port), **(extra or {})
        )
        self.process = Process("api", [sys.executable, "-m", "services.api"], self.env, workdir / "api.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiProcess:
        self.process.start()

        def live() -> bool:
            assert self.process.alive(), self.process.output()[-3000:]
            return answers_ok_sync(f"{self.url}/health/live")

        eventually_sync(live, timeout=30, what="the API to answer")
        return self

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()


def module_process(name: str, module_args: list[str], workdir: Path, env: Mapping[str, str]) -> Process:
    return Process(name, [sys.executable, "-m", *module_args], dict(env), workdir / f"{name}.log")
