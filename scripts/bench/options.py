"""Command-line options of `python -m scripts.bench`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "var" / "bench"


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


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny durations (~3 s per phase): the CI smoke run")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load per phase (default 15; 3 quick)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections / concurrent tasks (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the machine has 2 cores)")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each HTTP phase")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON results")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and data directories of the run")
    args = parser.parse_args(argv)
    duration = args.duration if args.duration is not None else (3.0 if args.quick else 15.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
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
    )
