"""`just soak`: the chaos convergence scenario for longer (default 10 minutes), on a throwaway MariaDB.

    python scripts/soak.py                      # the storm: 6 clients, ~280 changes/s for 45 s on 2,000
                                                # incidents, beside an alert storm for as long (200 Alertmanager
                                                # and Events v2 notifications/s, mostly repeats of 2 x 50 groups),
                                                # chaos, one 40-70 s SIGSTOP of a worker replica,
                                                # 200 s to converge (what `just soak` runs)
    python scripts/soak.py --minutes 10 --rate 15 --incidents-per-minute 90 --settle-minutes 6 --pause 8 12
    python scripts/soak.py --minutes 3 --seed 7
    python scripts/soak.py --outage zendesk --outage-minutes 3   # one vendor down, no chaos
    python scripts/soak.py --cluster            # the storm on a 3-node NATS cluster (R3), two API replicas:
                                                # besides the services' chaos, in cycles, the stream leader
                                                # SIGKILLed, a node frozen 10 s, a node restarted

Prints `actions=N ok=N kills=N events=N duplicates=0 lost=0 converged=100.0%`, writes the details to
var/chaos/latest.json (and var/chaos/soak-<time>.json), and exits 1 unless everything converged.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.mariadb import MariaDB

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python scripts/soak.py` puts scripts/, not the root, on the path
    sys.path.insert(0, str(ROOT))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=0.75, help="how long the load and the chaos run")
    parser.add_argument("--rate", type=float, default=280.0, help="API actions per second over all clients")
    parser.add_argument("--incidents-per-minute", type=float, default=2667.0, help="new incidents per minute")
    parser.add_argument("--clients", type=int, default=6, help="concurrent API clients")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000, help="random seed (printed)")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of vendor requests that fail")
    parser.add_argument("--no-late", action="store_true", help="no vendor answers after the workers' timeout")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"))
    parser.add_argument(
        "--settle-minutes", type=float, default=None,
        help="patience for draining after the load (default 200 s; 6 minutes for --outage)",
    )  # fmt: skip
    parser.add_argument(
        "--pause", type=float, nargs=2, default=(40.0, 70.0), metavar=("MIN", "MAX"),
        help="seconds one worker replica stays frozen (SIGSTOP) during the chaos",
    )  # fmt: skip
    parser.add_argument(
        "--storm-rate", type=float, default=200.0,
        help="alert storm beside the actions: Alertmanager and Events v2 notifications per second (0: none)",
    )  # fmt: skip
    parser.add_argument("--storm-groups", type=int, default=50, help="open alert groups per kind the storm repeats")
    parser.add_argument("--workdir", type=Path, help="keep logs and data here (default: a temporary folder)")
    parser.add_argument(
        "--outage",
        choices=("jira", "slack", "zendesk"),
        help="instead: this vendor down for --outage-minutes (503, then connection refused), no chaos",
    )
    parser.add_argument("--outage-minutes", type=float, default=3.0)
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="a 3-node NATS cluster (R3 streams and buckets) and two API replicas; NATS chaos in cycles",
    )
    return parser.parse_args(argv)


async def database(workdir: Path) -> tuple[MariaDB, str]:
    """A throwaway MariaDB server and a migrated database on it."""
    from tests.support.database import migrate, new_mysql_database
    from tests.support.mariadb import MariaDB

    mariadb = MariaDB(workdir / "mariadb")
    await asyncio.to_thread(mariadb.start)
    url = new_mysql_database(mariadb.admin_url, mariadb.sql)
    await asyncio.to_thread(migrate, url)  # alembic runs its own event loop: not in this one
    return mariadb, url


async def outage(args: argparse.Namespace, workdir: Path) -> int:
    from tests.chaos.outage import OutagePlan, run_outage

    plan = OutagePlan(
        vendor=args.outage,
        seconds=args.outage_minutes * 60,
        incidents=max(1, int(args.incidents_per_minute * args.outage_minutes / 3)),
        actions=max(1, int(args.rate * 20)),
        settle_timeout=(args.settle_minutes if args.settle_minutes is not None else 6.0) * 60,
        seed=args.seed,
    )
    mariadb, url = await database(workdir)
    try:
        print(f"soak: outage of {plan.vendor} for {plan.seconds:.0f}s, seed={args.seed}, workdir={workdir}", flush=True)
        report = await run_outage(plan, workdir, url)
    finally:
        await asyncio.to_thread(mariadb.stop)
    report.write()
    if report.problems:
        print("\n".join(report.problems[:40]))
    print(report.line(), flush=True)
    ok = report.deadletters == 0 and (report.duplicates, report.lost, report.converged) == (0, 0, 100.0)
    return 0 if ok else 1


async def soak(args: argparse.Namespace, workdir: Path) -> int:
    if args.outage:
        return await outage(args, workdir)
    from tests.chaos.load import LoadPlan
    from tests.chaos.monkey import ChaosPlan
    from tests.chaos.natschaos import NatsChaosPlan
    from tests.chaos.scenario import LATEST, Scenario, run
    from tests.chaos.storm import StormPlan

    seconds = args.minutes * 60
    load = LoadPlan(
        incidents=max(1, int(args.incidents_per_minute * args.minutes)),
        actions=max(1, int(args.rate * seconds)),
        clients=args.clients,
        rate=args.rate,
        seed=args.seed,
    )
    scenario = Scenario(
        load=load,
        chaos=ChaosPlan(
            interval=(args.kill_every[0], args.kill_every[1]),
            pause=(args.pause[0], args.pause[1]),
            pause_after=(3.0, max(3.0, min(15.0, seconds / 3))),
            seed=args.seed,
        ),
        fault_rate=args.fault_rate,
        late_faults=not args.no_late,
        settle_timeout=args.settle_minutes * 60 if args.settle_minutes is not None else 200.0,
        storm=None
        if args.storm_rate <= 0
        else StormPlan(rate=args.storm_rate, groups=args.storm_groups, seed=args.seed),
        cluster_size=3 if args.cluster else 0,
        api_replicas=2 if args.cluster else 1,
        nats_chaos=NatsChaosPlan(cycles=True),
    )
    mariadb, url = await database(workdir)
    try:
        where = "a 3-node NATS cluster" if args.cluster else "one nats-server"
        print(
            f"soak: seed={args.seed} incidents={load.incidents} actions={load.actions} on {where} workdir={workdir}",
            flush=True,
        )
        summary = await run(scenario, workdir, url, mariadb)
    finally:
        await asyncio.to_thread(mariadb.stop)
    summary.write()
    summary.write(LATEST.with_name(f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    if summary.problems or summary.settle_error or summary.stream_error or summary.deadletters or summary.storm_error:
        print(summary.explain())
    print(summary.line(), flush=True)
    ok = (
        summary.duplicates == 0
        and summary.lost == 0
        and summary.converged == 100.0
        and summary.deadletters == 0
        and summary.settle_error is None
        and summary.stream_error is None
        and summary.storm_error is None
    )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.workdir is not None:
        args.workdir = args.workdir.resolve()
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(soak(args, args.workdir))
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        return asyncio.run(soak(args, Path(folder)))


if __name__ == "__main__":
    sys.exit(main())
