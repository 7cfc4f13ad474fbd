"""`just soak`: the chaos convergence scenario for longer (default 10 minutes), on a throwaway MariaDB.

    python scripts/soak.py                      # 10 minutes of load and chaos, then convergence checks
    python scripts/soak.py --minutes 3 --seed 7
    python scripts/soak.py --minutes 5 --outage jira --outage-minutes 3

Prints `actions=N ok=N kills=N events=N duplicates=0 lost=0 converged=100.0%`, writes the details to
var/chaos/latest.json (and var/chaos/soak-<time>.json), and exits 1 unless everything converged.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python scripts/soak.py` puts scripts/, not the root, on the path
    sys.path.insert(0, str(ROOT))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load and the chaos run")
    parser.add_argument("--rate", type=float, default=15.0, help="API actions per second over all clients")
    parser.add_argument("--incidents-per-minute", type=float, default=90.0, help="new incidents per minute")
    parser.add_argument("--clients", type=int, default=6, help="concurrent API clients")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000, help="random seed (printed)")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of vendor requests that fail")
    parser.add_argument("--no-late", action="store_true", help="no vendor answers after the workers' timeout")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"))
    parser.add_argument("--settle-minutes", type=float, default=6.0, help="patience for draining after the chaos")
    parser.add_argument("--workdir", type=Path, help="keep logs and data here (default: a temporary folder)")
    return parser.parse_args(argv)


async def soak(args: argparse.Namespace, workdir: Path) -> int:
    from tests.chaos.load import LoadPlan
    from tests.chaos.monkey import ChaosPlan
    from tests.chaos.scenario import LATEST, Scenario, run
    from tests.support.database import migrate, new_mysql_database
    from tests.support.mariadb import MariaDB

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
        chaos=ChaosPlan(interval=(args.kill_every[0], args.kill_every[1]), seed=args.seed),
        fault_rate=args.fault_rate,
        late_faults=not args.no_late,
        settle_timeout=args.settle_minutes * 60,
    )
    mariadb = MariaDB(workdir / "mariadb")
    await asyncio.to_thread(mariadb.start)
    try:
        url = new_mysql_database(mariadb.admin_url, mariadb.sql)
        await asyncio.to_thread(migrate, url)  # alembic runs its own event loop: not in this one
        print(f"soak: seed={args.seed} incidents={load.incidents} actions={load.actions} workdir={workdir}", flush=True)
        summary = await run(replace(scenario), workdir, url)
    finally:
        await asyncio.to_thread(mariadb.stop)
    summary.write()
    summary.write(LATEST.with_name(f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    print(summary.explain() if summary.problems or summary.settle_error or summary.stream_error else "")
    print(summary.line(), flush=True)
    ok = (
        summary.duplicates == 0
        and summary.lost == 0
        and summary.converged == 100.0
        and summary.settle_error is None
        and summary.stream_error is None
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
