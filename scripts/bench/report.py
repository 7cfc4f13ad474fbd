"""Ratios, targets, the printed table and the JSON files under var/bench/."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from scripts.bench.system import WORKERS

SERVICES = ("api", "eventhandler", *(f"worker-{w}" for w in WORKERS))
INFRA = ("mariadbd", "nats-server")
RATIO_TARGET = 0.25  # at least 0.25x bare Litestar with httptools and uvloop, as deployed
H11_RATIO_TARGET = 0.35  # at least 0.35x bare Litestar on uvicorn's pure-Python h11 (the Go seed: 0.30x)
REPEAT_RATIO_TARGET = 2.0  # an alert storm's repeats at least twice as fast as new alerts
REPEAT_STATEMENTS_TARGET = 2.0  # SQL statements per repeat, amortised
REPEAT_API_CPU_TARGET_MS = 0.2
CATCH_UP_TARGET_S = 1.0
E2E_P99_TARGET_MS = 50.0
RSS_TARGET_MB = 200.0


def _div(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 3)


def delivered_rps(api: dict[str, Any]) -> float | None:
    """Creates per second through the whole pipeline: the load's requests over the load and its catch-up, until
    every worker has acked every event. When the API accepts faster than the workers deliver, this is the rate
    the system sustains; when the workers keep up, it is the API's rate."""
    catch_up = (api.get("catch_up") or {}).get("seconds")
    if catch_up is None or not api.get("duration_s"):
        return None
    return round(api["requests"] / (api["duration_s"] + catch_up), 1)


def _pipeline_ratios(api: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    """Against the bare baselines: the pipeline's delivered rate (the targets), and the API's own rate."""
    delivered, h11 = delivered_rps(api), base.get("bare_litestar_h11")
    return {
        "api_vs_bare_litestar": _div(delivered, base["bare_litestar"]["rps"]),
        "api_vs_bare_litestar_h11": _div(delivered, h11["rps"]) if h11 else None,
        "api_accepts_vs_bare_litestar_h11": _div(api["rps"], h11["rps"]) if h11 else None,
    }


def add_ratios_and_targets(results: dict[str, Any]) -> None:
    base = results["baselines"]
    api = results["api"]
    e2e = results["end_to_end"]
    h11 = base.get("bare_litestar_h11")
    results["ratios"] = {
        **_pipeline_ratios(api, base),
        "api_vs_raw_db": _div(api["rps"], base["raw_db"]["tps"]),
        "api_vs_raw_jetstream": _div(api["rps"], base["raw_jetstream"]["msgs_per_s"]),
    }
    results["cpu_per_incident_ms"] = cpu_budget(results)
    half = e2e["half_rate"]["delivery"]
    p99s = [d["p99_ms"] for d in half.values()]
    complete = all(d["acked"] == d["events"] and d["events"] > 0 for d in half.values())
    worst_p99 = None if None in p99s or not p99s else max(p99s)
    catch_up = e2e["max_rate"]["catch_up"]["seconds"]
    rss = {name: results["resources"]["processes"].get(name, {}).get("peak_rss_mb") for name in SERVICES}
    worst_rss = max((v for v in rss.values() if v is not None), default=None)
    ratio = results["ratios"]["api_vs_bare_litestar"]
    results["targets"] = [
        {
            "name": "pipeline create rate ≥ 0.25x bare Litestar",
            "value": ratio,
            "met": ratio is not None and ratio >= RATIO_TARGET,
        },
        {
            "name": "workers caught up ≤ 1 s after the load's end",
            "value": catch_up,
            "met": catch_up is not None and catch_up <= CATCH_UP_TARGET_S,
        },
        {
            "name": "end-to-end p99 < 50 ms at half the maximum rate (every worker)",
            "value": worst_p99,
            "met": complete and worst_p99 is not None and worst_p99 < E2E_P99_TARGET_MS,
        },
        {
            "name": "no service over 200 MB RSS",
            "value": worst_rss,
            "met": worst_rss is not None and worst_rss <= RSS_TARGET_MB and None not in rss.values(),
        },
    ]
    if h11:
        h11_ratio = results["ratios"]["api_vs_bare_litestar_h11"]
        results["targets"].append(h11_target(h11_ratio))
    if "alert_storm" in results:
        results["targets"] += storm_targets(results)


def storm_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert storm's targets, each a figure of the same run."""
    storm = results["alert_storm"]
    new, repeats = storm["new_groups"], storm["repeats"]
    ratio = _div(repeats["accepted_per_s"], new["accepted_per_s"])
    results["ratios"]["storm_repeats_vs_new"] = ratio
    per = repeats["per_notification"]
    clean = all(p["non_2xx"] == 0 and p["socket_errors"] == 0 for p in (new, repeats))
    return [
        {"name": "alert storm: repeats/s ≥ 2x new alerts/s", "value": ratio, "met": bool(ratio and ratio >= 2)},
        {
            "name": "alert storm: ≤ 2 SQL statements per repeat (amortised)",
            "value": per["sql_statements"],
            "met": per["sql_statements"] <= REPEAT_STATEMENTS_TARGET,
        },
        {
            "name": "alert storm: API CPU per repeat ≤ 0.2 ms",
            "value": per["api_cpu_ms"],
            "met": per["api_cpu_ms"] <= REPEAT_API_CPU_TARGET_MS,
        },
        {
            "name": "alert storm: sum of alert_count = notifications accepted",
            "value": f"{storm['alert_count_sum']} / {storm['accepted_total']}",
            "met": clean and storm["alert_count_sum"] == storm["accepted_total"],
        },
    ]


def cpu_budget(results: dict[str, Any]) -> dict[str, Any]:
    """CPU milliseconds each process spent per incident created in the max-rate phase (load and catch-up),
    and the rate at which they would use every core of the machine: a ceiling for the whole pipeline."""
    api = results["api"]
    requests = api["requests"] or 1
    by_process = {
        name: round(1000 * cpu / requests, 2) for name, cpu in api["cpu_s"].items() if name in (*SERVICES, *INFRA)
    }
    total = round(sum(by_process.values()), 2)
    cores = results["meta"]["machine"]["cores"] or 1
    bare = results["baselines"]["bare_litestar"]
    bare_ms = 1000 * bare["cpu_s"].get("bare", 0.0) / (bare["requests"] or 1)
    return {
        "by_process": by_process,
        "total": total,
        "ceiling_per_s": round(cores * 1000 / total, 0) if total else None,
        "bare_ms": round(bare_ms, 3),
        "note": "ms of CPU per created incident; ceiling = cores x 1000 / total, if nothing else ran",
    }


def add_selected_ratios(results: dict[str, Any]) -> None:
    """`--only`: the ratios and targets of the phases that ran."""
    base = results["baselines"]
    results["ratios"], results["targets"] = {}, []
    api = results.get("api")
    if api:
        results["ratios"] = _pipeline_ratios(api, base)
        results["cpu_per_incident_ms"] = cpu_budget(results)
        results["targets"].append(h11_target(results["ratios"]["api_vs_bare_litestar_h11"]))
    if "alert_storm" in results:
        results["targets"] += storm_targets(results)


def selected_table(results: dict[str, Any]) -> str:
    """`--only`: the phases that ran, each beside its baselines."""
    m = results["meta"]
    code = (m.get("experiment") or {}).get("code_root") or "this checkout"
    head = (
        f"incidents benchmark, only {', '.join(m['experiment']['only'])} — code {code}, {m['machine']['cores']} "
        f"cores, {m['duration_s']:g} s per phase, {m['concurrency']} connections, load average "
        f"{m['loadavg_at_start']} at start{' [QUICK: not a measurement]' if m['quick'] else ''}\n"
    )
    rows: list[tuple[str, str, str, str]] = [("measure", "result", "target", "status")]
    api, base = results.get("api"), results["baselines"]
    if api:
        c = m["concurrency"]
        budget = results["cpu_per_incident_ms"]
        by = budget["by_process"]
        workers = sum(by.get(f"worker-{w}", 0.0) for w in WORKERS)
        rows += [
            (f"bare Litestar, httptools/uvloop (wrk -c{c})", f"{_n(base['bare_litestar']['rps'])} req/s", "", ""),
            (f"API POST /incident/ (wrk -c{c})", f"{_n(api['rps'])} req/s", "", ""),
            *_delivered_rows(api),
            ("pipeline ÷ bare Litestar", _n(results["ratios"]["api_vs_bare_litestar"], "x", 2), "", ""),
            *_h11_rows(results),
            (
                "CPU ms per incident: total (api, 3 workers, eh, nats, mariadb)",
                f"{budget['total']:.2f} ({by.get('api', 0):.2f}, {workers:.2f}, {by.get('eventhandler', 0):.2f}, "
                f"{by.get('nats-server', 0):.2f}, {by.get('mariadbd', 0):.2f})",
                "",
                "",
            ),
        ]
    rows += _storm_rows(results)
    return head + columns(rows)


def write_json(results: dict[str, Any], out_dir: Path) -> Path:
    """bench-<time>.json and latest.json; an experiment writes experiment-<time>.json and leaves latest alone."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    text = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    experiment = bool(results["meta"].get("experiment"))
    path = out_dir / f"{'experiment' if experiment else 'bench'}-{stamp}.json"
    path.write_text(text)
    if not experiment:
        (out_dir / "latest.json").write_text(text)
    return path


def _n(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def _lat(d: dict[str, Any], keys: tuple[str, ...] = ("p50_ms", "p90_ms", "p99_ms")) -> str:
    return " / ".join(_n(d.get(k), digits=1) for k in keys) + " ms"


P50_99 = ("p50_ms", "p99_ms")


def _delivery(d: dict[str, Any]) -> str:
    if not d["acked"]:
        return "not measured: no ack lines in the worker's log"
    leg = _lat(d, ("from_stream_p50_ms", "from_stream_p99_ms"))
    return f"{_lat(d, P50_99)} (from JetStream {leg})"


def _met(flag: bool) -> str:
    return "met" if flag else "NOT MET"


def _rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    base, api, e2e, res = results["baselines"], results["api"], results["end_to_end"], results["resources"]
    targets = {t["name"]: t for t in results["targets"]}
    t_ratio, t_catch, t_p99, t_rss = (targets[name] for name in list(targets)[:4])
    bare, db, js = base["bare_litestar"], base["raw_db"], base["raw_jetstream"]
    c = results["meta"]["concurrency"]
    rows: list[tuple[str, str, str, str]] = [
        (f"bare Litestar, uvicorn 1 worker (wrk -c{c})", f"{_n(bare['rps'])} req/s", "", ""),
        ("  latency p50 / p90 / p99", _lat(bare), "", ""),
        (f"raw MariaDB, 2-row transactions ({c} asyncmy conns)", f"{_n(db['tps'])} tx/s", "", ""),
        ("  latency p50 / p99", _lat(db, ("p50_ms", "p99_ms")), "", ""),
        ("raw JetStream publish_async (event-sized)", f"{_n(js['msgs_per_s'])} msg/s", "", ""),
        (f"API POST /incident/ (wrk -c{c}, {results['meta']['api_server']})", f"{_n(api['rps'])} req/s", "", ""),
        ("  latency p50 / p90 / p99", _lat(api), "", ""),
        (
            "  non-2xx / socket errors",
            f"{api['non_2xx']} / {api['socket_errors']}",
            "0 / 0",
            _met(api["non_2xx"] == 0 and api["socket_errors"] == 0),
        ),
        *_delivered_rows(api),
        (
            "pipeline ÷ bare Litestar",
            _n(results["ratios"]["api_vs_bare_litestar"], "x", 2),
            "≥ 0.25x",
            _met(t_ratio["met"]),
        ),
        *_h11_rows(results),
        ("API ÷ raw MariaDB", _n(results["ratios"]["api_vs_raw_db"], "x", 2), "", ""),
    ]
    backlog = e2e["max_rate"]["catch_up"]["at_load_end"]
    pending = max((v["num_pending"] + v["num_ack_pending"] for v in backlog["consumers"].values()), default=0)
    rows.append(("backlog at load end: outbox / worst consumer", f"{backlog['outbox']:,} / {pending:,}", "", ""))
    batches = e2e["max_rate"]["relay_batches"]
    rows.append(("outbox relay: events per request (max rate)", f"{_n(batches['mean_batch'], '', 1)}", "", ""))
    rows.append(("catch-up after the load (max rate)", _n(t_catch["value"], " s", 2), "≤ 1 s", _met(t_catch["met"])))
    rows.append(
        ("  commit → JetStream at max rate p50 / p99", _lat(e2e["max_rate"]["commit_to_stream"], P50_99), "", "")
    )
    for worker, d in e2e["max_rate"]["delivery"].items():
        rows.append((f"  commit → {worker} ack at max rate p50 / p99", _delivery(d), "", ""))
    load = e2e["half_rate"]["load"]
    rows.append(
        (
            "half rate: target / achieved (open loop)",
            f"{_n(load['target_rate'])} / {_n(load['achieved_rate'])} req/s",
            "",
            "",
        )
    )
    rows.append(("  HTTP latency p50 / p90 / p99", _lat(load), "", ""))
    rows.append(("  commit → JetStream p50 / p99", _lat(e2e["half_rate"]["commit_to_stream"], P50_99), "", ""))
    for worker, d in e2e["half_rate"]["delivery"].items():
        acked = "" if d["acked"] == d["events"] else f" ({d['acked']}/{d['events']} acked)"
        rows.append((f"  commit → {worker} ack p50 / p99{acked}", _delivery(d), "p99 < 50 ms", ""))
    rows.append(("  worst e2e p99 at half rate", _n(t_p99["value"], " ms", 1), "< 50 ms", _met(t_p99["met"])))
    rows.append(("  catch-up after the load (half rate)", _n(load["catch_up"]["seconds"], " s", 2), "", ""))
    changes = results.get("changes")
    if changes:
        rows.append(
            (
                f"API POST /incident/{{id}}/comments (wrk -c{c}, {changes['incidents']:,} incidents)",
                f"{_n(changes['rps'])} req/s",
                "",
                "",
            )
        )
        rows.append(("  latency p50 / p90 / p99", _lat(changes), "", ""))
        rows.append(("  non-2xx / socket errors", f"{changes['non_2xx']} / {changes['socket_errors']}", "", ""))
        rows.append(("  catch-up after the load", _n(changes["catch_up"]["seconds"], " s", 2), "", ""))
        total = sum(changes["cpu_s"].values()) * 1000 / (changes["requests"] or 1)
        api_ms = changes["cpu_s"].get("api", 0.0) * 1000 / (changes["requests"] or 1)
        rows.append(("  CPU per change, all processes (API)", f"{total:.2f} ms ({api_ms:.2f} ms)", "", ""))
    two_way = results.get("two_way")
    if two_way:
        clicks = two_way["slack_clicks_under_changes"]
        rows.append(
            (
                f"Slack click answer under comments ({_n(clicks['changes_load']['rps'])} req/s) p50 / p90 / p99",
                _lat(clicks),
                "p99 < 300 ms",
                _met(clicks["p99_ms"] is not None and clicks["p99_ms"] < 300),
            )
        )
        jira = two_way["jira_webhook_to_slack_at_half_rate"]
        rows.append(
            (
                f"Jira webhook → Slack message at {_n(jira['background']['target_rate'])} creates/s p50 / p90 / p99",
                _lat(jira),
                "",
                f"{jira['shown']}/{jira['webhooks']} shown",
            )
        )
    for name, used in res["processes"].items():
        max_cpu = res["cpu_s_max_rate_phase"].get(name)
        half_cpu = res["cpu_s_half_rate_phase"].get(name)
        value = f"{_n(max_cpu, ' s', 1)} / {_n(half_cpu, ' s', 1)} CPU, {_n(used['peak_rss_mb'], ' MB', 0)}"
        is_service = name in SERVICES
        flag = "" if not is_service else _met((used["peak_rss_mb"] or 0) <= RSS_TARGET_MB)
        rows.append((f"{name}: CPU max / half phase, peak RSS", value, "≤ 200 MB" if is_service else "", flag))
    rows.append(
        (
            "bare Litestar: CPU, peak RSS",
            f"{_n(res['bare_litestar']['cpu_s_phase'], ' s', 1)} CPU, "
            f"{_n(res['bare_litestar']['peak_rss_mb'], ' MB', 0)}",
            "",
            "",
        )
    )
    rows.append(("wrk CPU during the API phase", _n(res["wrk_cpu_s"], " s", 1), "", ""))
    budget = results["cpu_per_incident_ms"]
    by = budget["by_process"]
    workers = sum(ms for name, ms in by.items() if name.startswith("worker-"))
    parts = (
        f"api {by.get('api', 0):.2f}, 3 workers {workers:.2f}, mariadb {by.get('mariadbd', 0):.2f}, "
        f"nats {by.get('nats-server', 0):.2f}, eh {by.get('eventhandler', 0):.2f}"
    )
    rows.append(("CPU per created incident, max rate", f"{budget['total']:.2f} ms: {parts}", "", ""))
    rows.append(
        (
            "  → CPU-bound ceiling on this machine",
            f"{_n(budget['ceiling_per_s'])} incidents/s (bare Litestar: {budget['bare_ms']:.2f} ms/request)",
            "",
            "",
        )
    )
    rows.append(("no service over 200 MB RSS", _n(t_rss["value"], " MB", 0), "≤ 200 MB", _met(t_rss["met"])))
    rows.append(("noise: others' CPU, bare/DB/JS/API/half/storm new/repeats", _noise(results), "≈ 0%", ""))
    rows += _storm_rows(results)
    rows += _vendor_rows(results.get("vendor"))
    rows += [(line, "", "", "") for line in cost_lines(results.get("costs"))]
    rows += [(line, "", "", "") for line in driver_lines(results.get("driver"))]
    return rows


def _h11_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    h11 = results["baselines"].get("bare_litestar_h11")
    if not h11:
        return []
    target = next(t for t in results["targets"] if "h11" in t["name"])
    c = results["meta"]["concurrency"]
    accepts = results["ratios"].get("api_accepts_vs_bare_litestar_h11")
    return [
        (f"bare Litestar, uvicorn h11/asyncio (wrk -c{c})", f"{_n(h11['rps'])} req/s", "", ""),
        ("API alone (wrk's rate) ÷ bare Litestar (h11/asyncio)", _n(accepts, "x", 2), "", ""),
        ("pipeline ÷ bare Litestar (h11/asyncio)", _n(target["value"], "x", 2), "≥ 0.35x", _met(target["met"])),
    ]


def _delivered_rows(api: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    catch_up = (api.get("catch_up") or {}).get("seconds")
    return [
        (
            f"pipeline: created and delivered by 3 workers (load + {_n(catch_up, ' s', 1)} catch-up)",
            f"{_n(delivered_rps(api))} incidents/s",
            "",
            "",
        )
    ]


def _storm_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    storm = results.get("alert_storm")
    if not storm:
        return []
    c = results["meta"]["concurrency"]
    rows: list[tuple[str, str, str, str]] = []
    for label, load in (("new groups", storm["new_groups"]), ("repeats, 100 open groups", storm["repeats"])):
        per = load["per_notification"]
        rows += [
            (f"alert storm, {label} (wrk -c{c})", f"{_n(load['accepted_per_s'])} notifications/s", "", ""),
            ("  latency p50 / p90 / p99", _lat(load), "", ""),
            ("  non-2xx / socket errors", f"{load['non_2xx']} / {load['socket_errors']}", "0 / 0", ""),
            (
                "  SQL statements per notification (SELECT / UPDATE / COMMIT)",
                f"{per['sql_statements']:.2f} ({per['select']:.2f} / {per['update']:.2f} / {per['commit']:.2f})",
                "",
                "",
            ),
            (
                "  CPU ms per notification: API / MariaDB / all",
                f"{per['api_cpu_ms']:.3f} / {per['mariadb_cpu_ms']:.3f} / {per['all_cpu_ms']:.3f}",
                "",
                "",
            ),
        ]
    for target in results["targets"]:
        if target["name"].startswith("alert storm"):
            rows.append(
                (f"  {target['name'].removeprefix('alert storm: ')}", str(target["value"]), "", _met(target["met"]))
            )
    return rows


def cost_lines(costs: dict[str, Any] | None) -> list[str]:
    """Durability and tracing, each measured on and off in the same run (interleaved rounds)."""
    if not costs:
        return []
    durability, tracing = costs["durability"], costs["tracing"]

    def pair(name: str, d: dict[str, Any], base: str, variant: str) -> str:
        return (
            f"  {name}: {variant} {_n(d['variant_median'], digits=1)} vs {base} {_n(d['base_median'], digits=1)} "
            f"{d['unit']} → {d['ratio']}x"
        )

    return [
        f"costs, interleaved ({costs['rounds']} rounds of {costs['seconds_each']:g} s each side, medians):",
        pair("one synchronous publisher", durability["one_synchronous_publisher"], "default", "sync always"),
        pair("event handler store path", durability["event_handler_store_path"], "default", "sync always"),
        pair("API create rate", tracing["api_create_rate"], "tracing off", "tracing on"),
        pair("API CPU per request", tracing["api_cpu_per_request"], "tracing off", "tracing on"),
    ]


def driver_lines(driver: dict[str, Any] | None) -> list[str]:
    """Per database and operation: databases' rate and client CPU, and SQLAlchemy's as ratios of the same run."""
    if not driver:
        return []
    lines = [
        f"driver layer, interleaved ({driver['rounds']} rounds of {driver['seconds_each']:g} s each side, medians, "
        f"{driver['concurrency']} tasks; client CPU per operation; ratios SQLAlchemy ÷ databases):"
    ]
    for database, operations in driver["databases"].items():
        for name, operation in operations.items():
            base = operation["variants"]["databases"]
            parts = [f"databases {_n(base['ops_per_s'])}/s, {base['cpu_ms_per_op']:.3f} ms"]
            for variant, ratio in operation["ratios_vs_databases"].items():
                parts.append(f"{variant} rate {ratio['ops_per_s']}x, CPU {ratio['cpu_per_op']}x")
            lines.append(f"  {database} {name}: " + "; ".join(parts))
    return lines


def _vendor_rows(vendor: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """The vendor phase: workers draining a backlog against local vendors (0-80 ms)."""
    if not vendor:
        return []
    rows = [(f"vendor phase: {vendor['events']} events, {vendor['replicas']} replicas/worker", "", "", "")]
    for name, f in vendor["workers"].items():
        result = (
            f"{_n(f['events_per_s'])} events/s, {f['calls_per_event']} calls/event, "
            f"{f['cpu_ms_per_event']} CPU ms/event"
        )
        rows.append((f"  {name}", result, "", ""))
    for target in vendor["targets"]:
        rows.append((f"  {target['name']}", str(target["value"]), "", _met(bool(target["met"]))))
    return rows


def _noise(results: dict[str, Any]) -> str:
    """The share of the machine that processes outside the benchmark used in each phase."""
    cores = results["meta"]["machine"]["cores"] or 1
    base, api, half = results["baselines"], results["api"], results["end_to_end"]["half_rate"]["load"]
    phases = [
        (base["bare_litestar"]["cpu_s"], base["bare_litestar"]["duration_s"]),
        (base["raw_db"]["cpu_s"], base["raw_db"]["duration_s"]),
        (base["raw_jetstream"]["cpu_s"], base["raw_jetstream"]["duration_s"]),
        (api["cpu_s"], api["wall_s"]),
        (half["cpu_s"], half["wall_s"]),
    ]
    storm = results.get("alert_storm")
    if storm:
        phases += [(storm[k]["cpu_s"], storm[k]["duration_s"]) for k in ("new_groups", "repeats")]
    shares = [100 * cpu.get("others", 0.0) / (wall * cores) if wall else 0.0 for cpu, wall in phases]
    return " / ".join(f"{share:.0f}%" for share in shares)


def table(results: dict[str, Any]) -> str:
    m = results["meta"]
    machine = m["machine"]
    head = (
        f"incidents benchmark — {machine['cores']} cores ({machine['cpu']}), {m['duration_s']:g} s per phase, "
        f"{m['concurrency']} connections, API under {m['api_server']}, load average {m['loadavg_at_start']} at start"
        f"{' [QUICK: not a measurement]' if m['quick'] else ''}\n"
        + (f"EXPERIMENT: {m['experiment']}\n" if m.get("experiment") else "")
        + f"load generator: {m['load_generator']}\n"
    )
    rows = [("measure", "result", "target", "status"), *_rows(results)]
    return head + columns(rows)


def h11_target(h11_ratio: float | None) -> dict[str, Any]:
    return {
        "name": "pipeline create rate ≥ 0.35x bare Litestar on uvicorn h11/asyncio",
        "value": h11_ratio,
        "met": h11_ratio is not None and h11_ratio >= H11_RATIO_TARGET,
    }


def columns(rows: list[tuple[str, str, str, str]]) -> str:
    """Rows in columns as wide as their widest cell, a rule under the first (the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
