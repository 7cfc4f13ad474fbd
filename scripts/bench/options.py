"""Command-line options of `python -m scripts.bench`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "var" / "bench"
ONLY_PHASES = ("api", "storm")
"""Phases `--only` can pick: api (creates at wrk, beside both bare Litestar baselines), storm (the alert storm)."""


@dataclass(frozen=True)
class Options:
    duration: float
    """Seconds of load per phase."""
    concurrency: int
    """wrk connections, raw-DB tasks; the same for the API and its baselines."""
    threads: int
    """wrk threads."""
    warmup: float
    quick: bool
    out_dir: Path
    keep_workdir: bool
    catchup_timeout: float
    """How long to wait for the workers to catch up before calling it not met."""
    api_server: str = "uvicorn"
    """uvicorn: `python -m services.api` as deployed; granian: the same app under granian (an experiment)."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment for the services (e.g. OUTBOX_BATCH_SIZE=100), for experiments."""
    mariadb_sql: tuple[str, ...] = ()
    """Statements run on MariaDB before the services start (e.g. SET GLOBAL ...), for experiments."""
    profile: bool = False
    """py-spy the API, the event handler and one worker during the API phase (slows them down), and one
    replica of each worker during the vendor phase."""
    vendor_only: bool = False
    """Run only the vendor phase (workers draining a backlog against local vendors)."""
    costs_only: bool = False
    """Run only the costs phase (durability and tracing, on and off, interleaved)."""
    driver_only: bool = False
    """Run only the driver phase (databases against SQLAlchemy's async engine, interleaved)."""
    vendor_events: int = 4000
    """Events in the vendor phase's backlog."""
    code_root: Path | None = None
    """Run every service the benchmark starts (API, event handler, workers, migrations) from this checkout, to
    measure another version with the same harness; the baselines stay this checkout's."""
    vendor: bool = True
    """Run the vendor phase after the others (`--no-vendor` leaves it out, for interleaved runs)."""
    only: frozenset[str] = frozenset()
    """Run only these phases (and their baselines); empty runs them all."""

    @property
    def is_default(self) -> bool:
        return (
            self.api_server == "uvicorn"
            and not self.env
            and not self.mariadb_sql
            and not self.profile
            and self.code_root is None
            and not self.only
        )


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny durations (~3 s per phase): the CI smoke run")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load per phase (default 15; 3 quick)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections / concurrent tasks (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the machine has 2 cores)")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each HTTP phase")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON results")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and data directories of the run")
    parser.add_argument(
        "--api-server", choices=("uvicorn", "granian"), default="uvicorn", help="experiment: serve the API with granian"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="experiment: extra env for the services"
    )
    parser.add_argument(
        "--mariadb-sql",
        action="append",
        default=[],
        metavar="SQL",
        help="experiment: run on MariaDB before the services",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the services during the API and vendor phases")
    parser.add_argument("--vendor-only", action="store_true", help="run only the vendor phase")
    parser.add_argument(
        "--costs-only", action="store_true", help="run only the durability and tracing costs (interleaved ratios)"
    )
    parser.add_argument(
        "--driver-only", action="store_true", help="run only the database driver phase (databases vs SQLAlchemy)"
    )
    parser.add_argument("--vendor-events", type=int, default=None, help="backlog of the vendor phase (default 4000)")
    parser.add_argument(
        "--code-root", type=Path, default=None, help="run every service the bench starts from this checkout"
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="PHASES",
        help=f"comma-separated phases to run, nothing else: {', '.join(ONLY_PHASES)} (e.g. --only api,storm)",
    )
    parser.add_argument("--no-vendor", action="store_true", help="leave the vendor phase out")
    args = parser.parse_args(argv)
    env: list[tuple[str, str]] = []
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--env wants KEY=VALUE, got {item!r}")
        env.append((key, value))
    duration = args.duration if args.duration is not None else (3.0 if args.quick else 15.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    only = frozenset(p.strip() for p in args.only.split(",") if p.strip())
    if only - set(ONLY_PHASES):
        parser.error(f"--only takes {', '.join(ONLY_PHASES)}, got {args.only!r}")
    if duration <= 0 or args.concurrency < 1 or args.threads < 1 or warmup < 0:
        parser.error("--duration, --concurrency and --threads must be positive")
    return Options(
        duration=duration,
        concurrency=args.concurrency,
        threads=min(args.threads, args.concurrency),
        warmup=warmup,
        quick=args.quick,
        out_dir=args.out,
        keep_workdir=args.keep_workdir,
        catchup_timeout=60.0 if args.quick else 120.0,
        api_server=args.api_server,
        env=tuple(env),
        mariadb_sql=tuple(args.mariadb_sql),
        profile=args.profile,
        vendor_only=args.vendor_only,
        costs_only=args.costs_only,
        driver_only=args.driver_only,
        vendor_events=args.vendor_events or (500 if args.quick else 4000),
        code_root=args.code_root.resolve() if args.code_root else None,
        vendor=not args.no_vendor,
        only=only,
    )
