"""A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on loopback, routing to our API."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.polling import eventually_sync
from tests.support.processes import Process, answers_ok_sync, free_port

CANDIDATES = ("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")


def alertmanager_binary() -> str:
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeError("Alertmanager not found: apt-get install prometheus-alertmanager (.ci/run does)")


def config(webhook_url: str, token: str) -> str:
    # Short waits so that a test sees a group's notifications within seconds.
    return f"""
global:
  resolve_timeout: 1m
route:
  receiver: incidents
  group_by: ["alertname"]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: incidents
    webhook_configs:
      - url: "{webhook_url}"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: "{token}"
"""


class Alertmanager:
    def __init__(self, workdir: Path, webhook_url: str, token: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.webhook_url = webhook_url
        self.token = token
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "alertmanager.yml"
        conf.write_text(config(self.webhook_url, self.token))
        argv = [
            alertmanager_binary(),
            f"--config.file={conf}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--cluster.listen-address=",  # no HA gossip: one instance, nothing listens beyond loopback
        ]
        self.process = Process("alertmanager", argv, None, self.workdir / "alertmanager.log").start()

        def ready() -> bool:
            assert self.process is not None and self.process.alive(), self.output()[-3000:]
            return answers_ok_sync(f"{self.url}/-/ready")

        eventually_sync(ready, timeout=30, what="Alertmanager to be ready")
        return self

    def output(self) -> str:
        return self.process.output() if self.process else ""

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    async def post_alerts(self, http: httpx.AsyncClient, *alerts: dict[str, Any]) -> None:
        response = await http.post(f"{self.url}/api/v2/alerts", json=list(alerts))
        assert response.status_code == 200, response.text


def firing(labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    now = datetime.now().astimezone()
    return {
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "generatorURL": "http://prometheus.test/graph",
    }


def resolved(alert: dict[str, Any]) -> dict[str, Any]:
    return {**alert, "endsAt": datetime.now().astimezone().isoformat()}
