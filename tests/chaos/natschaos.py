"""Chaos in the NATS cluster while the load runs: SIGKILL the INCIDENTS stream's leader (and start it again),
freeze another node (SIGSTOP, then SIGCONT), and restart the third (SIGTERM, then start); once, or in cycles
until the load ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client

from shared.events import STREAM
from tests.support.cluster import ClusterNode, NatsCluster
from tests.support.polling import eventually


@dataclass(frozen=True)
class NatsChaosPlan:
    start_after: float = 4.0
    """Seconds of load before the first step."""
    leader_down: float = 4.0
    """Seconds the killed stream leader stays down."""
    freeze: float = 10.0
    """Seconds a node stays frozen."""
    gap: float = 4.0
    """Seconds between two steps."""
    cycles: bool = False
    """Repeat the three steps until the load ends (the soak), instead of once (the CI test)."""


@dataclass
class NatsChaosStats:
    leader_kills: int = 0
    freezes: int = 0
    restarts: int = 0
    timeline: list[str] = field(default_factory=list)


async def _expected(_: Exception) -> None:
    """Connection errors are what this chaos causes: the client reconnects to another node."""


class NatsChaos:
    def __init__(self, cluster: NatsCluster, plan: NatsChaosPlan) -> None:
        self.cluster = cluster
        self.plan = plan
        self.stats = NatsChaosStats()
        self._started = time.monotonic()

    def _note(self, what: str, node: ClusterNode) -> None:
        self.stats.timeline.append(f"{time.monotonic() - self._started:7.1f}s nats {what} {node.name}")

    async def run(self, stop: asyncio.Event) -> NatsChaosStats:
        nc = await nats.connect(
            servers=self.cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=_expected
        )
        try:
            await asyncio.sleep(self.plan.start_after)  # the schedule
            while True:
                await self._cycle(nc)
                if not self.plan.cycles or stop.is_set():
                    break
                await asyncio.sleep(self.plan.gap)  # the schedule
        finally:
            await nc.close()
        return self.stats

    async def _leader(self, nc: Client) -> ClusterNode:
        async def elected() -> str:
            info = await nc.jetstream().stream_info(
                STREAM,
            )
            return info.cluster.leader if info.cluster and info.cluster.leader else ""

        async def probe() -> str:
            with contextlib.suppress(Exception):  # during an election JetStream answers 503 or not at all
                return await elected()
            return ""

        name = await eventually(probe, timeout=60, interval=0.5, what="a leader of the INCIDENTS stream")
        return self.cluster.node(name)

    async def _cycle(self, nc: Client) -> None:
        leader = await self._leader(nc)
        leader.kill()
        self.stats.leader_kills += 1
        self._note("killed stream leader", leader)
        try:
            await asyncio.sleep(self.plan.leader_down)  # the schedule
        finally:
            await asyncio.to_thread(leader.start)
            self._note("started", leader)
        await asyncio.sleep(self.plan.gap)  # the schedule
        others = [node for node in self.cluster.nodes if node is not leader]
        frozen, restarted = others[0], others[1]
        frozen.freeze()
        self.stats.freezes += 1
        self._note(f"froze for {self.plan.freeze:g}s", frozen)
        try:
            await asyncio.sleep(self.plan.freeze)  # the schedule
        finally:
            frozen.thaw()
            self._note("thawed", frozen)
        await asyncio.sleep(self.plan.gap)  # the schedule
        await asyncio.to_thread(restarted.stop)
        self._note("stopped (SIGTERM)", restarted)
        await asyncio.to_thread(restarted.start)
        self.stats.restarts += 1
        self._note("started", restarted)
