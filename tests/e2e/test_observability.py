"""The dashboard and the alert rules can't rot: real promtool accepts every expression, and every metric they
name is exported by the running services (scraped from real processes after real work)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import eventually
from tests.support.processes import ROOT, Process, free_port
from tests.support.services import module_process, service_env
from tests.support.stack import Stack, wait_for_empty_outbox

OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "monitoring" / "prometheusrule.yaml"
PROMTOOL = "/usr/bin/promtool"  # Debian's `prometheus` package; .ci/run installs it
# Series Prometheus makes itself for each scrape target, not exported by a service.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"})
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"})
KEYWORDS |= {"offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, keywords, labels
    (in matchers, `by`/`without`/`on`/`ignoring` lists) or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text):
        name = match.group(1)
        if name.lower() not in KEYWORDS and not re.fullmatch(r"\d+[smhdwy]", name):
            names.add(name)
    return names


def test_metric_names_reads_selectors_only() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, worker) (rate(a_bucket{worker=~"$worker", path="/x"}[5m])))'
        " / on (worker) group_left b_total > bool 1 unless absent(c) or d offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d"}


def _grafana(expr: str) -> str:
    """A dashboard query as Prometheus receives it: Grafana's variables replaced."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__range", "6h").replace("$__interval", "1m")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def dashboards() -> dict[str, dict[str, Any]]:
    found = {path.name: json.loads(path.read_text()) for path in sorted(OBSERVABILITY.glob("*.json"))}
    assert found, "no dashboard under deploy/observability"
    return found


def dashboard_queries() -> dict[str, str]:
    """`<file> / <panel> / <ref>` → the query, for every panel target and every variable query."""
    found: dict[str, str] = {}
    for name, board in dashboards().items():
        panels = list(board["panels"])
        while panels:
            panel = panels.pop()
            panels += panel.get("panels", [])
            for target in panel.get("targets", []):
                found[f"{name} / {panel['title']} / {target['refId']}"] = _grafana(target["expr"])
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
                selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
                found[f"{name} / variable {variable['name']}"] = selector.group(1) if selector else query
    return found


def rule_files() -> list[Path]:
    found = sorted(OBSERVABILITY.glob("*.rules.yaml"))
    assert found, "no rule file under deploy/observability"
    return found


def rule_expressions() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found[f"{path.name} / {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rules_the_prometheus_rule_and_every_dashboard_query(tmp_path: Path) -> None:
    for path in rule_files():
        checked = promtool("check", "rules", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    operator = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert operator["kind"] == "PrometheusRule"
    spec = tmp_path / "prometheusrule.rules.yaml"
    spec.write_text(yaml.safe_dump(operator["spec"]))
    checked = promtool("check", "rules", str(spec))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The dashboard's queries, as recording rules: promtool parses each one as PromQL.
    records = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(dashboard_queries().values())]
    queries = tmp_path / "dashboard.rules.yaml"
    queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    checked = promtool("check", "rules", str(queries))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_prometheus_rule_holds_the_same_rules_as_the_rule_file() -> None:
    operator = yaml.safe_load(PROMETHEUS_RULE.read_text())
    merged = [group for path in rule_files() for group in yaml.safe_load(path.read_text())["groups"]]
    assert operator["spec"]["groups"] == merged


def test_dashboard_panels_use_semantic_convention_units() -> None:
    for name, board in dashboards().items():
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            queries = " ".join(t["expr"] for t in panel["targets"])
            if "histogram_quantile" in queries and "_seconds_bucket" in queries:
                assert panel["fieldConfig"]["defaults"]["unit"] == "s", f"{name} / {panel['title']}"
    exported = {n for q in (*dashboard_queries().values(), *rule_expressions().values()) for n in metric_names(q)}
    durations = {n for n in exported if re.search(r"(duration|lag|age|time|latency|stalled)", n)}
    assert all(re.search(r"_seconds(_bucket|_sum|_count)?$", n) for n in durations), durations


def _exported(text: str) -> set[str]:
    """Every series name a scrape of this text yields, also for families that have no sample yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the metrics do not depend on the database
async def test_every_metric_of_the_dashboard_and_the_alerts_is_exported_by_the_running_services(
    stack: Stack, tmp_path: Path
) -> None:
    eventhandler_port = free_port()
    stack.extra_env = {"HEALTH_HOST": "127.0.0.1", "HEALTH_PORT": str(eventhandler_port)}
    stack.start_eventhandler()
    stack.extra_env = {}
    api = stack.start_api()
    workers: list[tuple[Process, int]] = []
    for name in ("jira", "webhooks"):  # a state-sync worker (dry run) and the webhooks worker
        port = free_port()
        env = service_env(NATS_URL=stack.nats.url, HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(port))
        workers.append((module_process(f"worker-{name}", ["services.workers", name], tmp_path, env).start(), port))
    urls = [f"{api.url}/metrics", f"http://127.0.0.1:{eventhandler_port}/metrics"]
    urls += [f"http://127.0.0.1:{port}/metrics" for _, port in workers]
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            created = await http.post(f"{api.url}/incident/", json={"message": "scrape me", "severity": "critical"})
            assert created.status_code == 200, created.text
            incident = created.json()["ID"]
            assert (await http.post(f"{api.url}/incident/{incident}/acknowledge")).status_code == 200
            assert (await http.post(f"{api.url}/incident/{incident}/resolve")).status_code == 200
            await wait_for_empty_outbox(stack.database_url)

            async def scraped() -> set[str]:
                names: set[str] = set()
                for url in urls:
                    try:
                        response = await http.get(url)
                    except httpx.HTTPError:
                        return set()
                    if response.status_code != 200:
                        return set()
                    names |= _exported(response.text)
                # Wait for real work to show: a worker's sync lag and a resolve's time, not only empty families.
                wanted = {"incidents_worker_sync_lag_seconds_count", "incidents_time_to_resolve_seconds_count"}
                return names if wanted <= names else set()

            exported = await eventually(scraped, timeout=60, interval=0.3, what="every service's metrics")
    finally:
        for process, _ in workers:
            process.stop()

    queries = {**rule_expressions(), **dashboard_queries()}
    named = {where: metric_names(query) for where, query in queries.items()}
    assert all(named.values()), [where for where, names in named.items() if not names]
    missing = {where: sorted(names - exported - SYNTHETIC) for where, names in named.items()}
    missing = {where: names for where, names in missing.items() if names}
    assert not missing, f"expressions name metrics no service exports: {missing}"


def test_the_operating_guide_lists_every_panel_and_explains_every_alert() -> None:
    guide = (ROOT / "docs" / "operating.md").read_text()
    for name, board in dashboards().items():
        for panel in board["panels"]:
            assert f"| {panel['title']} |" in guide, f"docs/operating.md does not list {name} / {panel['title']}"
    for where in rule_expressions():
        alert = where.split(" / ")[1]
        assert f"\n### {alert}\n" in guide, f"docs/operating.md does not explain {alert}"
