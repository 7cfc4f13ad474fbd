"""The manifests call the code the way the code expects: modules, worker names, env names, ports, settings."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from functools import cache
from pathlib import Path

import pytest

from services.api.settings import ApiSettings
from services.eventhandler.settings import Settings as EventHandlerSettings
from services.workers.httpclient import HttpClient
from services.workers.registry import known_workers, load_worker
from services.workers.settings import ServiceSettings
from services.workers.webhooks.settings import WebhookSettings
from shared.webhooks import WEBHOOK_WORKER
from tests.deploy.dockerfile import image_config
from tests.deploy.manifests import (
    Obj,
    app_workloads,
    containers,
    example_secrets,
    find,
    launch_spec,
    one,
    referenced_vars,
    render,
)
from tests.support.processes import ROOT

# Where each entry module's settings are read: its package, plus the shared package.
SOURCES = {
    "services.api": ["services/api", "shared"],
    "services.eventhandler": ["services/eventhandler", "shared"],
    "services.workers": ["services/workers", "shared"],
    "alembic": ["alembic", "alembic.ini"],
}
# Read by the interpreter or the OS, not by our code.
RUNTIME_ENV = re.compile(r"^(PYTHON\w+|HOME|PATH|PIP_\w+)$")


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return render()


@cache
def source_text(module: str) -> str:
    texts: list[str] = []
    for entry in SOURCES[module]:
        path = ROOT / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        texts.extend(f.read_text() for f in files)
    return "\n".join(texts)


def module_of(container: Obj) -> tuple[str, list[str]]:
    command = container["command"]
    assert command[:2] == ["python", "-m"], f"run as `python -m <module>`: {command}"
    return command[2], command[3:]


def test_every_module_exists(objects: list[Obj]) -> None:
    for workload in app_workloads(objects):
        for container in containers(workload):
            module, _ = module_of(container)
            assert importlib.util.find_spec(module) is not None, module
            if module.startswith("services."):
                assert importlib.util.find_spec(module + ".__main__") is not None, f"{module} has no __main__"


def test_every_registered_worker_is_deployed_once(objects: list[Obj]) -> None:
    deployed = {}
    for workload in app_workloads(objects):
        for container in containers(workload):
            module, args = module_of(container)
            if module == "services.workers":
                (name,) = args
                deployed[name] = workload["metadata"]["name"]
                assert load_worker(name).name == name
    assert sorted(deployed) == known_workers()
    assert deployed == {name: f"incidents-worker-{name}" for name in deployed}
    subscriptions = tomllib.loads((ROOT / "config" / "subscriptions.toml").read_text())
    # webhooks subscribes per endpoint (POST /webhooks), not in the file.
    per_endpoint = {WEBHOOK_WORKER}
    assert sorted(subscriptions["workers"]) == sorted(set(deployed) - per_endpoint), "every listed worker runs"


def test_every_env_var_is_read_by_the_code_it_is_given_to(objects: list[Obj]) -> None:
    for workload in app_workloads(objects):
        for container in containers(workload):
            module, _ = module_of(container)
            env = container.get("env", [])
            only_referenced = {name for var in env for name in referenced_vars(str(var.get("value", "")))}
            text = source_text(module)
            for var in env:
                name = var["name"]
                if name in only_referenced or RUNTIME_ENV.match(name):
                    continue
                where = workload["metadata"]["name"]
                assert re.search(rf"[\"']{name}[\"']", text), f"{where}: {module} never reads {name}"


def test_image_env_is_read_by_some_service() -> None:
    text = "\n".join(source_text(module) for module in SOURCES)
    for name in image_config().env:
        assert RUNTIME_ENV.match(name) or re.search(rf"[\"']{name}[\"']", text), name


def test_migrations_read_database_url(objects: list[Obj]) -> None:
    (container,) = containers(one(objects, "Job", "incidents-migrate"))
    assert "DATABASE_URL" in {v["name"] for v in container["env"]}
    assert re.search(r"[\"']DATABASE_URL[\"']", source_text("alembic"))
    assert (ROOT / "alembic.ini").is_file()


def port_named(container: Obj, name: str) -> int:
    return int(next(p["containerPort"] for p in container["ports"] if p["name"] == name))


def test_api_settings_accept_the_manifest(objects: list[Obj]) -> None:
    spec = launch_spec(objects, "incidents-api", example_secrets())
    settings = ApiSettings.from_env(spec.env)
    (container,) = containers(one(objects, "Deployment", "incidents-api"))
    assert settings.host == "0.0.0.0"
    probe_port = container["readinessProbe"]["httpGet"]["port"]
    assert settings.port == port_named(container, probe_port) == spec.probes["readiness"][1]
    assert settings.database_url.startswith("mysql+asyncmy://incidents:")
    assert settings.database_url.endswith("@mysql:3306/incidents")
    assert "$(" not in settings.database_url
    assert settings.tokens, "API_TOKENS set: every route but health, docs and metrics needs a token"
    assert settings.nats.user == "api" and len(settings.nats.servers) == 3
    assert settings.log_format == "json"


def test_eventhandler_settings_accept_the_manifest(objects: list[Obj]) -> None:
    spec = launch_spec(objects, "incidents-eventhandler", example_secrets())
    settings = EventHandlerSettings.from_env(spec.env)
    (container,) = containers(one(objects, "Deployment", "incidents-eventhandler"))
    assert settings.stream_replicas == 3
    assert settings.health_host == "0.0.0.0"
    assert settings.health_port == port_named(container, "health") == spec.probes["liveness"][1]
    assert settings.subscriptions_file == ROOT / "config" / "subscriptions.toml"
    assert settings.nats.user == "eventhandler" and len(settings.nats.servers) == 3


@pytest.mark.parametrize("worker", ["jira", "slack", "zendesk"])
async def test_worker_settings_accept_the_manifest(objects: list[Obj], worker: str) -> None:
    name = f"incidents-worker-{worker}"
    spec = launch_spec(objects, name, example_secrets())
    settings = ServiceSettings.from_env(spec.env)
    (container,) = containers(one(objects, "Deployment", name))
    assert settings.health_host == "0.0.0.0"
    assert settings.health_port == port_named(container, "health") == spec.probes["readiness"][1]
    assert settings.nats.user == worker and len(settings.nats.servers) == 3
    async with HttpClient(timeout=5) as client:
        built = load_worker(worker).from_env(spec.env, client)
        assert built.dry_run, "the base config has no vendor credentials: the worker runs dry"


def test_webhooks_worker_settings_accept_the_manifest(objects: list[Obj]) -> None:
    name = "incidents-worker-webhooks"
    spec = launch_spec(objects, name, example_secrets())
    settings = ServiceSettings.from_env(spec.env)
    webhooks = WebhookSettings.from_env(spec.env)
    (container,) = containers(one(objects, "Deployment", name))
    assert settings.health_host == "0.0.0.0"
    assert settings.health_port == port_named(container, "health") == spec.probes["readiness"][1]
    assert settings.nats.user == WEBHOOK_WORKER and len(settings.nats.servers) == 3
    assert webhooks.allow_private is False and webhooks.timeout == 15.0 and webhooks.retry_budget == 259200.0
    api = ApiSettings.from_env(launch_spec(objects, "incidents-api", example_secrets()).env)
    assert api.webhook_allow_private is webhooks.allow_private, "the API and the worker apply the same guard"


def test_each_worker_gets_only_its_own_vendor_settings(objects: list[Obj]) -> None:
    vendors = {"jira", "slack", "zendesk"}
    for workload in find(objects, "Deployment"):
        if not workload["metadata"]["name"].startswith("incidents-worker-"):
            continue
        worker = workload["metadata"]["name"].removeprefix("incidents-worker-")
        for container in containers(workload):
            names = {v["name"] for v in container["env"]}
            for other in vendors - {worker}:
                assert not [n for n in names if n.startswith(other.upper() + "_")], f"{worker} gets {other} settings"
    # The API checks the vendors' signed calls (two-way sync) and knows who the workers act as, never their tokens.
    two_way = {
        "SLACK_SIGNING_SECRET",
        "JIRA_WEBHOOK_SECRET",
        "ZENDESK_WEBHOOK_SECRET",
        "JIRA_ACCOUNT_ID",
        "ZENDESK_EMAIL",
    }
    for name, allowed in (("incidents-api", two_way), ("incidents-eventhandler", set())):
        (container,) = containers(one(objects, "Deployment", name))
        names = {v["name"] for v in container["env"]}
        assert not [n for n in names if n.split("_")[0].lower() in vendors and n not in allowed], name


def test_database_credentials_go_only_where_needed(objects: list[Obj]) -> None:
    for workload in app_workloads(objects):
        names = {v["name"] for c in containers(workload) for v in c.get("env", [])}
        needs = workload["metadata"]["name"] in ("incidents-api", "incidents-migrate")
        assert ("DATABASE_URL" in names) == needs, workload["metadata"]["name"]


def test_subscriptions_file_is_in_the_image(objects: list[Obj]) -> None:
    spec = launch_spec(objects, "incidents-eventhandler", example_secrets())
    path = Path(spec.env["SUBSCRIPTIONS_FILE"])
    assert path.is_file() and path.is_relative_to(ROOT / "config")
