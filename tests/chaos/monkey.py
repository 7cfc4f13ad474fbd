"""The chaos loop: every few seconds SIGKILL a random service and start it again after a random downtime;
once, freeze a worker replica (SIGSTOP) for longer than its lease and AckWait, then thaw it (SIGCONT).

It also supervises, as Kubernetes would: a service that exited on its own is counted and started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.chaos.system import Exited, Service, System

# Relative chances of each kind of victim (a worker victim is one of the six replicas); MariaDB when the
# system was given its server.
VICTIMS: dict[str, int] = {"api": 2, "eventhandler": 2, "worker": 4, "nats": 1, "mariadb": 1}


@dataclass(frozen=True)
class ChaosPlan:
    interval: tuple[float, float] = (2.0, 5.0)
    """Seconds between two kills."""
    downtime: tuple[float, float] = (0.2, 3.0)
    """Seconds a killed service stays down."""
    pause: tuple[float, float] = (8.0, 12.0)
    """Seconds one worker replica stays frozen (SIGSTOP); longer than its lease and the consumers' AckWait."""
    pause_after: tuple[float, float] = (2.0, 8.0)
    """Seconds after the chaos begins when that replica is frozen."""
    database_kill_after: tuple[float, float] = (3.0, 10.0)
    """Seconds after the chaos begins when MariaDB (when it is a victim) is SIGKILLed at the latest."""
    seed: int = 1


@dataclass
class ChaosStats:
    kills: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    """Services found dead that we had not killed: crashes, or exits after losing a dependency."""
    slow_starts: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)
    """Seconds each frozen replica stayed frozen."""

    @property
    def total_kills(self) -> int:
        return sum(self.kills.values())


class Monkey:
    def __init__(self, system: System, plan: ChaosPlan) -> None:
        self.system = system
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.stats = ChaosStats()
        self._down: set[str] = set()
        self._revivals: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()

    def _note(self, what: str, service: Service) -> None:
        self.stats.timeline.append(f"{time.monotonic() - self._started:7.1f}s {what} {service.name}")

    def _pick(self) -> Service | None:
        candidates = [s for s in self.system.everything() if s.name not in self._down and s.alive()]
        kinds = {k: w for k, w in VICTIMS.items() if any(s.kind == k for s in candidates)}
        if not kinds:
            return None
        kind = self.rng.choices(list(kinds), weights=list(kinds.values()))[0]
        return self.rng.choice([s for s in candidates if s.kind == kind])

    async def run(self, stop: asyncio.Event) -> ChaosStats:
        pause = asyncio.create_task(self._pause_one())
        database = asyncio.create_task(self._kill_database_once())
        try:
            await self._kill_loop(stop)
            await pause  # the pause may outlast the load: the replica is thawed before the checks
        finally:
            pause.cancel()
            database.cancel()
        await self.settle()
        return self.stats

    async def _kill_database_once(self) -> None:
        """Every run with the database among the victims kills it at least once, whatever the draw."""
        database = self.system.mariadb
        await asyncio.sleep(self.rng.uniform(*self.plan.database_kill_after))  # the schedule
        if database is None or self.stats.kills[database.name] or database.name in self._down:
            return
        database.kill()
        self.stats.kills[database.name] += 1
        self._note("killed", database)
        self._revive(database, self.rng.uniform(*self.plan.downtime))

    async def _pause_one(self) -> None:
        await asyncio.sleep(self.rng.uniform(*self.plan.pause_after))  # the schedule
        candidates = [s for s in self.system.services if s.kind == "worker" and s.name not in self._down and s.alive()]
        if not candidates:
            return
        victim = self.rng.choice(candidates)
        seconds = self.rng.uniform(*self.plan.pause)
        self._down.add(victim.name)  # neither killed nor supervised while frozen
        victim.freeze()
        self._note(f"froze for {seconds:.0f}s", victim)
        started = time.monotonic()
        try:
            await asyncio.sleep(seconds)  # the schedule: how long the replica stays frozen
        finally:
            victim.thaw()
            self._down.discard(victim.name)
            self.stats.pauses.append(round(time.monotonic() - started, 1))
            self._note("thawed", victim)

    async def _kill_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                # The schedule between kills; waking early only to stop.
                await asyncio.wait_for(stop.wait(), self.rng.uniform(*self.plan.interval))
            self._supervise()
            if stop.is_set():
                break
            victim = self._pick()
            if victim is None:
                continue
            victim.kill()
            self.stats.kills[victim.name] += 1
            self._note("killed", victim)
            self._revive(victim, self.rng.uniform(*self.plan.downtime))
        await self.settle()

    def _supervise(self) -> None:
        for service in self.system.everything():
            if service.name not in self._down and not service.alive():
                self.stats.exits[service.name] += 1
                self._note("exited by itself:", service)
                self._revive(service, 0.0)

    def _revive(self, service: Service, downtime: float) -> None:
        self._down.add(service.name)
        task = asyncio.create_task(self._restart(service, downtime))
        self._revivals.add(task)
        task.add_done_callback(self._revivals.discard)

    async def _restart(self, service: Service, downtime: float) -> None:
        try:
            await asyncio.sleep(downtime)  # the schedule: how long the service stays down
            try:
                await service.start()
                self._note("started", service)
            except Exited:
                self._note("exited while starting:", service)  # the supervisor starts it again
            except AssertionError:
                # Not ready in time: it is running and may yet become ready; the final checks wait for it.
                self.stats.slow_starts.append(service.name)
        finally:
            self._down.discard(service.name)

    async def settle(self) -> None:
        """Wait for every pending restart, then for any service still dead to be started again."""
        while self._revivals:
            await asyncio.gather(*list(self._revivals))
        self._supervise()
        while self._revivals:
            await asyncio.gather(*list(self._revivals))
