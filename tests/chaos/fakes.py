"""The fake vendors with random faults and outages on top: 5xx (before or after applying the change),
429 with Retry-After, slow answers, answers that come after the worker gave up, and Slack's `ok: false`."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.jira import FakeJira
from tests.fakes.server import FakeServer, Reply
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk

Receive = Any
Send = Any

# Kinds of fault and their relative weights; each applies to one request.
FAULTS: dict[str, int] = {
    "error": 3,  # 500/502/503 before anything happened
    "error-after": 2,  # the change is made, then a 500 (the worker can't know it was applied)
    "ratelimit": 2,  # 429 with Retry-After
    "slow": 2,  # answered after a delay shorter than the worker's HTTP timeout
}
LATE_FAULT = "late"  # answered after the worker's timeout: the change lands while the worker retries
SLACK_FAULTS = {"slack-ratelimited": 1, "slack-internal": 1}  # HTTP 200 with ok: false


@dataclass
class FaultPlan:
    """What a fake does to the requests it gets; changed from the test's thread, read in the server's."""

    rate: float = 0.0
    """Probability that a request gets one of the faults."""
    down: bool = False
    """An outage: every request gets 503."""
    late: bool = False
    """Include answers that arrive after the worker's HTTP timeout."""
    timeout: float = 3.0
    """The workers' HTTP timeout, in seconds."""
    latency: tuple[float, float] = (0.0, 0.0)
    """Seconds every answer takes, drawn uniformly from this range (a vendor across the internet)."""
    rng: random.Random = field(default_factory=random.Random)
    injected: Counter[str] = field(default_factory=Counter)

    def pick(self, extra: dict[str, int]) -> str | None:
        if self.down:
            return "down"
        if self.rate <= 0 or self.rng.random() >= self.rate:
            return None
        kinds = {**FAULTS, **extra}
        if self.late:
            kinds[LATE_FAULT] = 1
        return self.rng.choices(list(kinds), weights=list(kinds.values()))[0]


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def replay(body: bytes) -> Receive:
    """A `receive` that hands the already-read body to the fake, even after the client went away."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # like a client that stays connected and sends nothing more
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def reply(send: Send, answer: Reply) -> None:
    payload = b"" if answer.body is None else json.dumps(answer.body).encode()
    headers = [(b"content-type", b"application/json; charset=utf-8")]
    headers += [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def failing_after(send: Send) -> Send:
    """Let the fake apply the change, then answer 500 instead of its real answer."""

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "status": 500, "headers": [(b"content-type", b"application/json")]}
        elif message["type"] == "http.response.body":
            message = {**message, "body": b'{"error": "injected after applying"}', "more_body": False}
        await send(message)

    return wrapped


class ChaosMixin(FakeServer):
    """Wraps a fake's ASGI app with the faults its `plan` asks for."""

    extra_faults: dict[str, int] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = FaultPlan()
        self.handling = 0
        """Requests being handled now, faults included (a late one may change state after its client gave up)."""

    async def asgi(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.handling += 1
        try:
            await self._chaos_asgi(scope, receive, send)
        finally:
            self.handling -= 1

    async def _chaos_asgi(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        plan = self.plan
        kind = plan.pick(self.extra_faults)
        if kind is not None:
            plan.injected[kind] += 1
        rng = plan.rng
        if plan.latency[1] > 0:
            await asyncio.sleep(rng.uniform(*plan.latency))
        if kind == "down":
            await reply(send, Reply(503, {"error": "service unavailable (outage)"}))
        elif kind == "error":
            await reply(send, Reply(rng.choice([500, 502, 503]), {"error": "injected"}))
        elif kind == "ratelimit":
            await reply(send, Reply(429, {"error": "rate limited"}, {"Retry-After": f"{rng.uniform(0.2, 1.5):.1f}"}))
        elif kind == "slack-ratelimited":
            headers = {"Retry-After": f"{rng.uniform(0.2, 1.5):.1f}"}
            await reply(send, Reply(200, {"ok": False, "error": "ratelimited"}, headers))
        elif kind == "slack-internal":
            await reply(send, Reply(200, {"ok": False, "error": "internal_error"}))
        elif kind == "error-after":
            await super().asgi(scope, replay(body), failing_after(send))
        else:
            if kind == "slow":
                await asyncio.sleep(rng.uniform(0.2, plan.timeout * 0.7))
            elif kind == LATE_FAULT:
                await asyncio.sleep(plan.timeout + rng.uniform(0.3, 1.5))
            await super().asgi(scope, replay(body), send)


class ChaosJira(ChaosMixin, FakeJira):
    pass


class ChaosZendesk(ChaosMixin, FakeZendesk):
    pass


class ChaosSlack(ChaosMixin, FakeSlack):
    extra_faults = SLACK_FAULTS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_micros = 0

    def _next_ts(self) -> str:
        # Real time, as Slack does: the base fake counts from its start time, so after five minutes its
        # messages fall before the `oldest` the worker searches from and could never be found again.
        self._last_micros = max(self._last_micros + 1, int(time.time() * 1_000_000))
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"


@dataclass
class Vendors:
    jira: ChaosJira
    slack: ChaosSlack
    zendesk: ChaosZendesk
    urls: dict[str, str] = field(default_factory=dict)
    """Where a worker reaches its vendor when not directly (e.g. through a Gate)."""

    @classmethod
    def start(cls, seed: int, timeout: float, search_lag: float) -> Vendors:
        vendors = cls(ChaosJira(), ChaosSlack(), ChaosZendesk())
        vendors.jira.search_lag = search_lag
        for n, fake in enumerate(vendors.all().values()):
            fake.plan.rng = random.Random(seed * 10 + n)
            fake.plan.timeout = timeout
            fake.start()
        return vendors

    def all(self) -> dict[str, ChaosMixin]:
        return {"jira": self.jira, "slack": self.slack, "zendesk": self.zendesk}

    def set_latency(self, low: float, high: float) -> None:
        for fake in self.all().values():
            fake.plan.latency = (low, high)

    def set_faults(self, rate: float, late: bool = False) -> None:
        for fake in self.all().values():
            fake.plan.rate = rate
            fake.plan.late = late

    def idle(self) -> bool:
        return all(fake.handling == 0 for fake in self.all().values())

    def injected(self) -> dict[str, int]:
        return {name: sum(fake.plan.injected.values()) for name, fake in self.all().items()}

    def env(self, worker: str) -> dict[str, str]:
        """The worker's credentials, pointed at its fake (so it is not in dry run)."""
        url = self.urls.get(worker) or self.all()[worker].url
        if worker == "jira":
            j = self.jira
            return {
                "JIRA_BASE_URL": url,
                "JIRA_EMAIL": j.email,
                "JIRA_API_TOKEN": j.token,
                "JIRA_PROJECT_KEY": j.project,
            }
        if worker == "slack":
            s = self.slack
            return {"SLACK_API_URL": url, "SLACK_BOT_TOKEN": s.token, "SLACK_CHANNEL": s.channel}
        z = self.zendesk
        return {"ZENDESK_BASE_URL": url, "ZENDESK_EMAIL": z.email, "ZENDESK_API_TOKEN": z.token}

    def stop(self) -> None:
        for fake in self.all().values():
            fake.stop()
