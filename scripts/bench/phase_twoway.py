"""The two-way phase, on a system of its own (MariaDB, nats-server, API, event handler, the slack worker
against a fake Slack in its own process, jira and zendesk workers in dry run):

- Slack clicks under the changes phase: wrk POSTs comments on random incidents at full speed while signed
  `block_actions` requests (each acknowledging another incident) come at a fixed rate, open loop; their
  answer times are the figure (target: p99 < 300 ms; Slack's own limit is 3 s).
- Jira webhook → Slack message: while incidents are created at a fixed rate (half the API phase's maximum),
  signed `jira:issue_updated` webhooks move probe incidents to Done; the figure is the time from sending
  the webhook to the fake Slack receiving the `chat.update` that shows the incident resolved.

`python -m scripts.bench.phase_twoway --rate 600 --duration 20` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import httpx

from scripts.bench.catchup import Probe
from scripts.bench.children import Children
from scripts.bench.openloop import run_open_loop
from scripts.bench.stats import percentiles_ms
from scripts.bench.system import DATABASE, WORKERS, api_argv, migrate, start_infra, wait_http_ok
from scripts.bench.twoway_slack import CHANNEL, TOKEN
from scripts.bench.wrk import run_wrk
from tests.support.processes import Process, free_port
from tests.support.services import service_env

SLACK_SECRET = "bench-slack-signing-secret"  # noqa: S105 (a throwaway system's)
JIRA_SECRET = "bench-jira-webhook-secret"  # noqa: S105
JIRA_ACCOUNT = "557058:bench-worker"
STATE_EVENTS = ["incident.acknowledged", "incident.unacknowledged", "incident.resolved", "incident.reopened"]
PROBE_MESSAGE = "bench two-way probe"
BULK_MESSAGE = "bench two-way"
CLICK_RATE = 10.0
"""Clicks per second, open loop: people click far less often than the comments arrive."""
PROBES = 40
NEVER_STALE = 2**40
"""The version a bench click says its button was drawn for: newer than any change, so each one acts."""


@dataclass
class TwoWayPhase:
    clicks: dict[str, Any]
    changes_load: dict[str, Any]
    jira_to_slack: dict[str, Any]
    background: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": __doc__.split("\n\n", 1)[0] if __doc__ else "",
            "slack_clicks_under_changes": {**self.clicks, "changes_load": self.changes_load},
            "jira_webhook_to_slack_at_half_rate": {**self.jira_to_slack, "background": self.background},
        }


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def slack_click(incident_id: int, user: str) -> tuple[bytes, dict[str, str]]:
    now = time.time()
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BENCH", "username": user, "name": user},
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL},
        "message": {"ts": "1.000001"},
        "response_url": "https://hooks.slack.com/actions/T0/1/bench",
        "actions": [
            {
                "type": "button",
                "action_id": "acknowledge",
                "block_id": "incident-actions",
                "value": f"{incident_id}:{NEVER_STALE}",
                "action_ts": f"{now:.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = int(now)
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": f"v0={digest}",
    }
    return body, headers


def jira_done(incident_id: int) -> tuple[bytes, dict[str, str]]:
    payload = {
        "timestamp": int(time.time() * 1000),
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": "557058:bench-person", "displayName": "Bench Person"},
        "issue": {
            "key": f"OPS-{incident_id}",
            "fields": {
                "labels": [f"incident-{incident_id}"],
                "status": {"name": "Done", "statusCategory": {"key": "done"}},
            },
        },
        "changelog": {"items": [{"field": "status", "fromString": "To Do", "toString": "Done"}]},
    }
    body = json.dumps(payload).encode()
    digest = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": f"sha256={digest}",
        "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
    }
    return body, headers


async def click_open_loop(api_url: str, ids: list[int], rate: float, duration: float) -> dict[str, Any]:
    """Signed clicks at `rate`, each due at t0 + i/rate; latency from its due time (no coordinated omission)."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    total = min(len(ids), int(rate * duration))
    async with httpx.AsyncClient(base_url=api_url, timeout=10, limits=httpx.Limits(max_connections=32)) as http:

        async def one(due: float, incident_id: int) -> None:
            body, headers = slack_click(incident_id, "bench")
            try:
                answer = await http.post("/integrations/slack/interactions", content=body, headers=headers)
                key = f"{answer.status_code} {answer.json().get('outcome', answer.json().get('error'))}"
            except (httpx.HTTPError, ValueError) as exc:
                key = type(exc).__name__
            latencies.append(loop.time() - due)
            outcomes[key] = outcomes.get(key, 0) + 1

        started = loop.time()
        tasks = []
        for i in range(total):
            due = started + i / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            tasks.append(asyncio.create_task(one(due, ids[i])))
        await asyncio.gather(*tasks)
    p = percentiles_ms(latencies, (50, 90, 99, 100))
    return {
        "request": "POST /integrations/slack/interactions (signed block_actions, Acknowledge on another incident each)",
        "rate": rate,
        "clicks": total,
        "outcomes": outcomes,
        "p50_ms": p[50],
        "p90_ms": p[90],
        "p99_ms": p[99],
        "max_ms": p[100],
        "target_p99_ms": 300,
    }


def slack_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


async def wait_for(what: str, check: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"two-way phase: timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def run_twoway_phase(
    workdir: Path, children: Children, *, half_rate: float, duration: float, concurrency: int, threads: int
) -> TwoWayPhase:
    root = workdir / "twoway"
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    infra = await asyncio.to_thread(start_infra, root, children)
    infra.mariadb.sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;")
    database_url = f"{infra.mariadb.admin_url}/{DATABASE}"
    await asyncio.to_thread(migrate, database_url)

    slack_events = root / "slack-events.jsonl"
    fake = children.add(
        Process(
            "fake-slack",
            [sys.executable, "-m", "scripts.bench.twoway_slack", str(slack_events)],
            service_env(),
            logs / "fake-slack.log",
        )
    ).start()
    await wait_for("the fake Slack", lambda: any(e.get("op") == "ready" for e in slack_log(slack_events)), 30)
    slack_port = next(e["port"] for e in slack_log(slack_events) if e.get("op") == "ready")
    assert fake.alive()

    subscriptions = root / "subscriptions.toml"
    subscriptions.write_text(
        '[workers.jira]\nevents = ["created"]\n\n[workers.zendesk]\nevents = ["created"]\n\n'
        '[workers.slack]\nevents = ["created", "acknowledged", "unacknowledged", "resolved", "reopened"]\n'
    )
    nats_url = infra.nats.url
    eh_port = free_port()
    eh_env = service_env(NATS_URL=nats_url, SUBSCRIPTIONS_FILE=str(subscriptions), HEALTH_PORT=str(eh_port))
    eventhandler = children.add(
        Process("eventhandler", [sys.executable, "-m", "services.eventhandler"], eh_env, logs / "eventhandler.log")
    ).start()
    await wait_http_ok(f"http://127.0.0.1:{eh_port}/health/ready", eventhandler)
    slack_env = {
        "SLACK_API_URL": f"http://127.0.0.1:{slack_port}",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_CHANNEL": CHANNEL,
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
    }
    workers = []
    for name in WORKERS:
        port = free_port()
        extra = slack_env if name == "slack" else {}
        env = service_env(NATS_URL=nats_url, HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(port), **extra)
        worker = children.add(
            Process(f"worker-{name}", [sys.executable, "-m", "services.workers", name], env, logs / f"{name}.log")
        ).start()
        await wait_http_ok(f"http://127.0.0.1:{port}/health/ready", worker)
        workers.append(worker)
    api_port = free_port()
    api_env = service_env(
        DATABASE_URL=database_url,
        NATS_URL=nats_url,
        API_HOST="127.0.0.1",
        API_PORT=str(api_port),
        SLACK_SIGNING_SECRET=SLACK_SECRET,
        JIRA_WEBHOOK_SECRET=JIRA_SECRET,
        JIRA_ACCOUNT_ID=JIRA_ACCOUNT,
    )
    api = children.add(Process("api", api_argv("uvicorn", api_port), api_env, logs / "api.log")).start()
    api_url = f"http://127.0.0.1:{api_port}"
    await wait_http_ok(f"{api_url}/health/ready", api)
    probe = await Probe(infra.mariadb, DATABASE, nats_url, WORKERS).open()
    try:
        return await _measure(api_url, root, slack_events, probe, half_rate, duration, concurrency, threads, children)
    finally:
        await probe.close()
        for process in (api, *workers, eventhandler, fake):
            children.stop(process, timeout=25)


async def _measure(
    api_url: str,
    root: Path,
    slack_events: Path,
    probe: Probe,
    half_rate: float,
    duration: float,
    concurrency: int,
    threads: int,
    children: Children,
) -> TwoWayPhase:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        probes = [
            int((await http.post("/incident/", json={"message": PROBE_MESSAGE})).json()["ID"]) for _ in range(PROBES)
        ]

        def posted() -> bool:
            seen = {e.get("incident") for e in slack_log(slack_events) if e.get("op") == "post"}
            return set(probes) <= seen

        await wait_for("the probes' Slack messages", posted)
        # From now on Slack hears state changes only: the loads below are not Slack's to carry.
        answer = await http.put("/subscriptions/slack", json={"events": STATE_EVENTS})
        answer.raise_for_status()

    say("two-way: creating incidents for the changes phase")
    bulk = await run_wrk(
        f"{api_url}/incident/",
        body=json.dumps({"message": BULK_MESSAGE}),
        duration=min(duration, 5.0),
        connections=concurrency,
        threads=threads,
        workdir=root,
        children=children,
        label="twoway-create",
    )
    await probe.wait_drained(bulk.ended_at, 300)
    lo, hi = await probe.incident_ids(BULK_MESSAGE)
    ids = list(range(lo, hi + 1))
    say(f"two-way: comments on {len(ids)} incidents with wrk for {duration:g}s, Slack clicks at {CLICK_RATE:g}/s")
    changes, clicks = await asyncio.gather(
        run_wrk(
            f"{api_url}/incident/",
            body=json.dumps({"comment": "bench change"}),
            duration=duration,
            connections=concurrency,
            threads=threads,
            workdir=root,
            children=children,
            label="twoway-changes",
            comment_on=(lo, hi),
        ),
        click_open_loop(api_url, ids[::-1], CLICK_RATE, duration),
    )
    say(f"  clicks p99 {clicks['p99_ms']} ms ({clicks['outcomes']}), comments {changes.rps:.0f} req/s")
    await probe.wait_drained(changes.ended_at, 300)

    say(f"two-way: creates at {half_rate:.0f}/s open loop for {duration:g}s, Jira webhooks on {PROBES} probes")
    parsed = urlparse(api_url)
    assert parsed.hostname is not None and parsed.port is not None
    sent: dict[int, float] = {}
    answers: dict[int, int] = {}

    async def webhooks() -> None:
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            gap = duration / (PROBES + 1)
            for incident_id in probes:
                await asyncio.sleep(gap)
                body, headers = jira_done(incident_id)
                sent[incident_id] = time.time()
                answers[incident_id] = (
                    await http.post("/integrations/jira/webhook", content=body, headers=headers)
                ).status_code

    load, _ = await asyncio.gather(
        run_open_loop(
            parsed.hostname,
            parsed.port,
            "/incident/",
            json.dumps({"message": "bench half"}).encode(),
            rate=max(half_rate, 1.0),
            duration=duration,
            connections=concurrency,
        ),
        webhooks(),
    )

    def shown() -> dict[int, float]:
        seen: dict[int, float] = {}
        for event in slack_log(slack_events):
            incident = event.get("incident")
            if event.get("op") == "update" and incident in sent and "Status: resolved" in str(event.get("text")):
                seen.setdefault(incident, float(event["t"]))
        return seen

    with contextlib.suppress(RuntimeError):  # what never showed is reported as missing
        await wait_for("the webhooks' changes in Slack", lambda: len(shown()) >= len(sent), 120)
    seen = shown()
    delays = [seen[i] - sent[i] for i in seen]
    p = percentiles_ms(delays, (50, 90, 99, 100))
    jira = {
        "path": "signed jira:issue_updated webhook → API → outbox → event handler → JetStream → slack worker "
        "→ chat.update showing `Status: resolved` at the fake Slack (its own process, timestamps in its log)",
        "webhooks": len(sent),
        "answers": sorted(set(answers.values())),
        "shown": len(seen),
        "p50_ms": p[50],
        "p90_ms": p[90],
        "p99_ms": p[99],
        "max_ms": p[100],
    }
    say(f"  Jira → Slack p50 {p[50]} ms, p99 {p[99]} ms ({len(seen)}/{len(sent)} shown)")
    changes_summary = {
        "request": "POST /incident/{random id}/comments",
        "incidents": len(ids),
        "rps": round(changes.rps, 1),
        "p50_ms": changes.p50_ms,
        "p99_ms": changes.p99_ms,
        "non_2xx": changes.non_2xx,
    }
    background = {k: v for k, v in load.as_dict().items() if k != "method"}
    return TwoWayPhase(clicks, changes_summary, jira, background)


def render(phase: TwoWayPhase) -> str:
    c, j = phase.clicks, phase.jira_to_slack
    return (
        f"two-way: Slack click answer under changes ({phase.changes_load['rps']} comments/s): "
        f"p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms (target < 300 ms); "
        f"Jira webhook → Slack message at {phase.background['target_rate']}/s creates: "
        f"p50 {j['p50_ms']} ms, p99 {j['p99_ms']} ms ({j['shown']}/{j['webhooks']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=600.0, help="creates per second in the Jira → Slack part")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("scripts/bench/results"))
    args = parser.parse_args()
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="incidents-bench-twoway-"))
    try:
        phase = asyncio.run(
            run_twoway_phase(
                workdir,
                children,
                half_rate=args.rate,
                duration=args.duration,
                concurrency=args.concurrency,
                threads=args.threads,
            )
        )
    finally:
        children.stop_all()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"twoway-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"loadavg": list(os.getloadavg()), **phase.as_dict()}, indent=2) + "\n")
    print(render(phase))
    say(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
