"""The benchmark's order of work: servers, baselines, services, API phase, half-rate phase, report."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.bench import meta, report
from scripts.bench.baseline_db import run_raw_db
from scripts.bench.baseline_http import BareResult, run_bare_litestar
from scripts.bench.baseline_nats import run_raw_jetstream
from scripts.bench.catchup import Probe
from scripts.bench.children import Children
from scripts.bench.delivery import measure
from scripts.bench.ehmetrics import publish_counts
from scripts.bench.options import ROOT, Options, parse_args
from scripts.bench.phase_api import MAX_MESSAGE, ApiPhase, run_api_phase, run_changes_phase, warm_up
from scripts.bench.phase_costs import run_costs_phase
from scripts.bench.phase_driver import run_bench_driver_phase
from scripts.bench.phase_rate import HALF_MESSAGE, run_rate_phase
from scripts.bench.phase_storm import StormPhase, run_storm_phase
from scripts.bench.phase_twoway import render as render_twoway
from scripts.bench.phase_twoway import run_twoway_phase
from scripts.bench.phase_vendor import VendorPhase, run_vendor_phase
from scripts.bench.phase_vendor import render as render_vendor
from scripts.bench.procstats import tree_cpu_seconds, tree_peak_rss_mb
from scripts.bench.profiling import Profiler
from scripts.bench.system import DATABASE, WORKERS, Infra, Services, start_infra, start_services, stop_services
from scripts.bench.target import Target
from scripts.bench.wrk import Wrk, WrkMissing, wrk_binary, wrk_version

PATH_AM = "POST /integrations/alertmanager"


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def resources(pids: dict[str, int]) -> dict[str, dict[str, float | None]]:
    """Total CPU seconds since start and peak RSS (VmHWM) of each process, read before it stops."""
    found: dict[str, dict[str, float | None]] = {}
    for name, pid in pids.items():
        cpu = tree_cpu_seconds(pid)
        rss = tree_peak_rss_mb(pid)
        found[name] = {"cpu_s_total": None if cpu is None else round(cpu, 2), "peak_rss_mb": _round(rss)}
    return found


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def bench(options: Options, workdir: Path, children: Children) -> dict[str, Any]:
    results: dict[str, Any] = {
        "meta": {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "loadavg_at_start": meta.loadavg(),
            "machine": meta.machine(),
            "versions": meta.versions(),
            "quick": options.quick,
            "duration_s": options.duration,
            "concurrency": options.concurrency,
            "load_generator": f"{wrk_version()} -t{options.threads} -c{options.concurrency} "
            f"-d{round(options.duration)}s (Lua script POSTs the body; done() hook prints JSON percentiles)",
            "command": "python -m scripts.bench " + " ".join(sys.argv[1:]),
            "api_server": options.api_server,
            "experiment": None
            if options.is_default
            else {
                "api_server": options.api_server,
                "env": dict(options.env),
                "mariadb_sql": list(options.mariadb_sql),
                "profile": options.profile,
                "code_root": None if options.code_root is None else str(options.code_root),
                "only": sorted(options.only),
            },
        }
    }
    say(f"starting MariaDB and nats-server in {workdir}")
    infra: Infra = await asyncio.to_thread(start_infra, workdir, children)
    if options.only:
        return await selected_phases(options, workdir, children, infra, results)

    bare, bare_h11 = await bare_baselines(options, workdir, children)
    say("baseline: raw MariaDB two-row transactions (asyncmy)")
    raw_db = await run_raw_db(
        infra.mariadb,
        {"mariadbd": infra.pids["mariadbd"]},
        duration=options.duration,
        concurrency=options.concurrency,
        warmup=min(options.warmup, 1.0),
    )
    say(f"  {raw_db.tps:.0f} tx/s")
    say("baseline: raw JetStream publish_async")
    raw_js = await run_raw_jetstream(
        infra.nats.url,
        {"nats-server": infra.pids["nats-server"]},
        duration=options.duration,
        warmup=min(options.warmup, 1.0),
    )
    say(f"  {raw_js.msgs_per_s:.0f} msg/s")
    results["baselines"] = {
        "bare_litestar": bare.as_dict(),
        "bare_litestar_h11": bare_h11.as_dict(),
        "raw_db": raw_db.as_dict(),
        "raw_jetstream": raw_js.as_dict(),
    }

    services, target = await start_target(options, workdir, children, infra)
    pids = target.pids
    probe = target.probe
    results["meta"]["pids"] = pids
    try:
        await warm_up(target)
        metrics_url = services.health_urls["eventhandler"].replace("/health/ready", "/metrics")
        counts_before = await publish_counts(metrics_url)
        api = await api_phase(target, children, results)
        counts_max = await publish_counts(metrics_url)
        # Half of what the system sustains: the pipeline's rate (the API alone may accept faster than it delivers).
        half = (report.delivered_rps(api.as_dict()) or api.wrk.rps) / 2
        say(f"half rate: {half:.0f} req/s open loop for {options.duration:g}s")
        rate = await run_rate_phase(services.api_url, half, options, probe, pids)
        counts_half = await publish_counts(metrics_url)
        say(f"  p99 {rate.load.p99_ms} ms, caught up {rate.catch_up.seconds}s after the load")
        delivery = await measure(probe.js, services.log_paths, {"max_rate": MAX_MESSAGE, "half_rate": HALF_MESSAGE})
        ids = await probe.incident_ids(MAX_MESSAGE)
        say(
            f"changes: POST /incident/{{id}}/comments on {ids[1] - ids[0] + 1} incidents "
            f"with wrk for {options.duration:g}s"
        )
        changes = await run_changes_phase(target, ids)
        say(f"  {changes.wrk.rps:.0f} req/s, caught up {changes.catch_up.seconds}s after the load")
        storm = await storm_phase(target)
    finally:
        await probe.close()
    used = resources(pids)
    results["api"] = api.as_dict()
    results["changes"] = changes.as_dict()
    results["alert_storm"] = storm.as_dict()
    results["end_to_end"] = {
        "method": "CloudEvent `time` (set in the API as it commits) to the worker's JSON log line `event applied` "
        "(written right after msg.ack(), with event_id and a microsecond timestamp); same clock, same machine. "
        "commit_to_stream: CloudEvent time to the JetStream message timestamp (outbox relay + event handler); "
        "from_stream: JetStream timestamp to the worker's ack line",
        "max_rate": {
            "catch_up": api.catch_up.as_dict(),
            "commit_to_stream": delivery["max_rate"].to_stream,
            "relay_batches": counts_max.minus(counts_before),
            "delivery": {w: d.as_dict() for w, d in delivery["max_rate"].workers.items()},
        },
        "half_rate": {
            "load": rate.as_dict(),
            "commit_to_stream": delivery["half_rate"].to_stream,
            "relay_batches": counts_half.minus(counts_max),
            "delivery": {w: d.as_dict() for w, d in delivery["half_rate"].workers.items()},
        },
    }
    say("stopping the services")
    codes = await asyncio.to_thread(stop_services, services, children)
    results["resources"] = {
        "processes": used,
        "bare_litestar": {"cpu_s_phase": bare.cpu_s.get("bare"), "peak_rss_mb": _round(bare.peak_rss_mb)},
        "cpu_s_max_rate_phase": api.cpu_s,
        "cpu_s_half_rate_phase": rate.cpu_s,
        "wrk_cpu_s": api.wrk.wrk_cpu_s,
        "exit_codes": codes,
        "method": "/proc/<pid>/stat utime+stime and /proc/<pid>/status VmHWM",
    }
    if options.vendor:
        results["vendor"] = (await vendor_phase(options, workdir, children)).as_dict()
    results["costs"] = await run_costs_phase(infra, options, workdir, children)
    say("driver phase: the API's hot statements through databases and through SQLAlchemy's async engine")
    results["driver"] = await run_bench_driver_phase(infra, options, workdir)
    say("two-way phase: Slack clicks under the changes load, Jira webhook → Slack message at half rate")
    two_way = await run_twoway_phase(
        workdir,
        children,
        half_rate=half,
        duration=options.duration,
        concurrency=options.concurrency,
        threads=options.threads,
    )
    say(render_twoway(two_way))
    results["two_way"] = two_way.as_dict()
    report.add_ratios_and_targets(results)
    return results


async def bare_baselines(options: Options, workdir: Path, children: Children) -> tuple[BareResult, BareResult]:
    """The bare Litestar app under uvicorn's fast parsers, then under its pure-Python defaults (h11, asyncio)."""
    say("baseline: bare Litestar under uvicorn (httptools, uvloop), wrk")
    bare = await run_bare_litestar(options, workdir, children)
    say(f"  {bare.wrk.rps:.0f} req/s")
    say("baseline: bare Litestar under uvicorn --http h11 --loop asyncio, wrk")
    bare_h11 = await run_bare_litestar(options, workdir, children, http="h11")
    say(f"  {bare_h11.wrk.rps:.0f} req/s")
    return bare, bare_h11


async def start_target(options: Options, workdir: Path, children: Children, infra: Infra) -> tuple[Services, Target]:
    """The services started, and what a load phase drives and measures them with."""
    services = await start_system(options, workdir, children, infra)
    pids = {**services.pids, **infra.pids}
    probe = await Probe(infra.mariadb, DATABASE, infra.nats.url, WORKERS).open()
    return services, Target(services.api_url, Wrk(options, workdir, children), probe, pids)


async def start_system(options: Options, workdir: Path, children: Children, infra: Infra) -> Services:
    where = "" if options.code_root is None else f" from {options.code_root}"
    say(f"starting the API, the event handler and the jira, slack and zendesk workers (dry run){where}")
    for statement in options.mariadb_sql:
        infra.mariadb.sql(statement)
    return await start_services(
        infra,
        workdir,
        children,
        api_server=options.api_server,
        extra_env=dict(options.env),
        code_root=options.code_root or ROOT,
    )


async def api_phase(target: Target, children: Children, results: dict[str, Any]) -> ApiPhase:
    """Creates with wrk; with `--profile`, py-spy samples the API, the event handler and one worker meanwhile."""
    options = target.options
    say(f"API: POST /incident/ with wrk for {options.duration:g}s at {options.concurrency} connections")
    profiler = None
    if options.profile:
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        profiler = Profiler(options.out_dir / f"profile-{stamp}", children)
        profiler.start({n: target.pids[n] for n in ("api", "eventhandler", "worker-jira")}, options.duration)
    api = await run_api_phase(target)
    if profiler is not None:
        results["profile"] = {"folder": str(profiler.out_dir), "summaries": await profiler.finish()}
        say(f"  profiles in {profiler.out_dir}")
    say(f"  {api.wrk.rps:.0f} req/s, caught up {api.catch_up.seconds}s after the load")
    return api


async def storm_phase(target: Target) -> StormPhase:
    duration = target.options.duration
    say(f"alert storm: {PATH_AM} with wrk for {duration:g}s, new groups, then repeats over 100 open groups")
    storm = await run_storm_phase(target)
    say(
        f"  new {storm.new_groups.wrk.rps:.0f}/s, repeats {storm.repeats.wrk.rps:.0f}/s; "
        f"alert_count sum {storm.alert_count_sum} for {storm.accepted_total} accepted"
    )
    return storm


async def selected_phases(
    options: Options, workdir: Path, children: Children, infra: Infra, results: dict[str, Any]
) -> dict[str, Any]:
    """`--only`: the chosen phases with their baselines, nothing else (for before/after runs, interleaved)."""
    results["baselines"] = {}
    if "api" in options.only:
        bare, bare_h11 = await bare_baselines(options, workdir, children)
        results["baselines"] = {"bare_litestar": bare.as_dict(), "bare_litestar_h11": bare_h11.as_dict()}
    services, target = await start_target(options, workdir, children, infra)
    pids = target.pids
    probe = target.probe
    results["meta"]["pids"] = pids
    try:
        await warm_up(target)
        if "api" in options.only:
            results["api"] = (await api_phase(target, children, results)).as_dict()
        if "storm" in options.only:
            storm = await storm_phase(target)
            results["alert_storm"] = storm.as_dict()
    finally:
        await probe.close()
    results["resources"] = {"processes": resources(pids)}
    say("stopping the services")
    results["resources"]["exit_codes"] = await asyncio.to_thread(stop_services, services, children)
    report.add_selected_ratios(results)
    return results


async def costs_only(options: Options, workdir: Path, children: Children) -> dict[str, Any]:
    return await on_infra("costs", workdir, children, lambda infra: run_costs_phase(infra, options, workdir, children))


async def driver_only(options: Options, workdir: Path, children: Children) -> dict[str, Any]:
    return await on_infra("driver", workdir, children, lambda infra: run_bench_driver_phase(infra, options, workdir))


async def on_infra(
    name: str, workdir: Path, children: Children, phase: Callable[[Infra], Coroutine[Any, Any, Any]]
) -> dict[str, Any]:
    """One phase on its own MariaDB and nats-server, with the run's meta: `{"meta": ..., name: figures}`."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load = meta.loadavg()
    infra: Infra = await asyncio.to_thread(start_infra, workdir, children)
    found = await phase(infra)
    return {
        "meta": {
            "started_at": started,
            "loadavg_at_start": load,
            "loadavg_at_end": meta.loadavg(),
            "machine": meta.machine(),
            "versions": meta.versions(),
            "command": " ".join(sys.argv),
        },
        name: found,
    }


async def vendor_phase(options: Options, workdir: Path, children: Children) -> VendorPhase:
    say(f"vendor phase: {options.vendor_events} events, two replicas of each worker, vendors answering in 0-80 ms")
    profile_dir = None
    if options.profile:
        profile_dir = options.out_dir / f"profile-vendor-{datetime.now().strftime('%Y%m%dT%H%M%S')}"
    phase = await run_vendor_phase(
        workdir,
        children,
        events=options.vendor_events,
        code_root=options.code_root or ROOT,
        profile_dir=profile_dir,
    )
    say(render_vendor(phase))
    return phase


async def vendor_only(options: Options, workdir: Path, children: Children) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    phase = await vendor_phase(options, workdir, children)
    return {
        "meta": {"started_at": started, "machine": meta.machine(), "command": " ".join(sys.argv)},
        **phase.as_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.vendor_only:
        return main_vendor_only(options)
    if options.costs_only:
        return main_costs_only(options)
    if options.driver_only:
        return _main_alone(options, "driver", driver_only, lambda r: report.driver_lines(r["driver"]))
    try:
        wrk_binary()
    except WrkMissing as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="incidents-bench-"))
    # SIGTERM behaves like Ctrl-C: unwind, and stop every child in the finally below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    try:
        results = asyncio.run(bench(options, workdir, children))
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    except Exception:
        kept = options.out_dir / "last-failure-logs"
        shutil.rmtree(kept, ignore_errors=True)
        if (workdir / "logs").exists():
            shutil.copytree(workdir / "logs", kept, ignore=shutil.ignore_patterns("*.sock"))
            say(f"failed; the services' logs are in {kept}")
        raise
    finally:
        _clean_up(options, workdir, children)
    results["meta"]["wall_s"] = round(time.monotonic() - started, 1)
    results["meta"]["loadavg_at_end"] = meta.loadavg()
    path = report.write_json(results, options.out_dir)
    print(report.selected_table(results) if options.only else report.table(results))
    say(f"results written to {path}" + ("" if results["meta"]["experiment"] else f" and {path.parent / 'latest.json'}"))
    return 0


def _clean_up(options: Options, workdir: Path, children: Children) -> None:
    children.stop_all()
    if options.keep_workdir:
        say(f"logs and data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _main_alone(
    options: Options,
    name: str,
    phase: Callable[[Options, Path, Children], Coroutine[Any, Any, dict[str, Any]]],
    summary: Callable[[dict[str, Any]], list[str]] | None = None,
) -> int:
    """One phase on its own, its results written to `<name>-<time>.json` in the results folder."""
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix=f"incidents-bench-{name}-"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        results = asyncio.run(phase(options, workdir, children))
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    finally:
        _clean_up(options, workdir, children)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    path = options.out_dir / f"{name}-{datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    if summary is not None:
        print("\n".join(summary(results)))
    say(f"results written to {path}")
    return 0


def main_costs_only(options: Options) -> int:
    return _main_alone(options, "costs", costs_only, lambda results: report.cost_lines(results["costs"]))


def main_vendor_only(options: Options) -> int:
    return _main_alone(options, "vendor", vendor_only)
