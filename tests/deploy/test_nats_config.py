"""The NATS StatefulSet, its Services and nats.conf agree with each other and with the services' NATS_URL."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from shared.relay import NATS_MAX_PAYLOAD
from tests.deploy.manifests import Obj, config_maps, containers, example_secrets, find, one, pod_spec, render
from tests.deploy.natsconf import deployed_conf, routes, setting, start_deployed_nats, variables


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return render()


def test_routes_name_every_pod_through_the_headless_service(objects: list[Obj]) -> None:
    statefulset = one(objects, "StatefulSet", "nats")
    headless = one(objects, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True, "routes must resolve before pods are ready"
    replicas = statefulset["spec"]["replicas"]
    expected = [f"nats://nats-{i}.{headless['metadata']['name']}:6222" for i in range(replicas)]
    assert routes(deployed_conf(objects)) == expected
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"


def test_clients_list_every_server(objects: list[Obj]) -> None:
    statefulset = one(objects, "StatefulSet", "nats")
    (config,) = [v for k, v in config_maps(objects).items() if k.startswith("incidents-config")]
    servers = config["NATS_URL"].split(",")
    assert servers == [
        f"nats://nats-{i}.{statefulset['spec']['serviceName']}:4222" for i in range(statefulset["spec"]["replicas"])
    ]


def test_every_variable_comes_from_the_container_env(objects: list[Obj]) -> None:
    conf = deployed_conf(objects)
    (container,) = containers(one(objects, "StatefulSet", "nats"))
    env = {v["name"]: v for v in container["env"]}
    for name in variables(conf):
        assert name in env, f"nats.conf uses ${name}, which the container does not set"
        if "PASSWORD" in name:
            assert "secretKeyRef" in env[name]["valueFrom"], name
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert setting(conf, "server_name") == "$POD_NAME", "JetStream clustering needs a unique server name"


def test_every_service_user_has_a_password_variable(objects: list[Obj]) -> None:
    conf = deployed_conf(objects)
    users = dict(re.findall(r"user:\s*(\w+)\s*[\n,]\s*password:\s*\$(\w+)", conf))
    assert set(users) == {"sys", "admin", "api", "eventhandler", "jira", "slack", "zendesk", "webhooks"}, users
    for workload in find(objects, "Deployment"):
        for container in containers(workload):
            env = {v["name"]: v for v in container.get("env", [])}
            if "NATS_USER" in env:
                user = env["NATS_USER"]["value"]
                assert user in users, f"{workload['metadata']['name']}: unknown NATS user {user}"
                key = env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
                assert key == f"nats-{user}-password"


def test_probes_use_the_monitoring_port(objects: list[Obj]) -> None:
    conf = deployed_conf(objects)
    (container,) = containers(one(objects, "StatefulSet", "nats"))
    monitor = next(p for p in container["ports"] if p["name"] == "monitor")
    assert setting(conf, "http").endswith(f":{monitor['containerPort']}")
    assert setting(conf, "listen").endswith(":4222")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "monitor"
        assert container[probe]["httpGet"]["path"].startswith("/healthz")


def test_lame_duck_fits_the_grace_period(objects: list[Obj]) -> None:
    conf = deployed_conf(objects)
    statefulset = one(objects, "StatefulSet", "nats")
    (container,) = containers(statefulset)
    seconds = {key: int(setting(conf, key).rstrip("s")) for key in ("lame_duck_duration", "lame_duck_grace_period")}
    assert (
        seconds["lame_duck_duration"] + seconds["lame_duck_grace_period"]
        < pod_spec(statefulset)["terminationGracePeriodSeconds"]
    )
    pid_file = setting(conf, "pid_file")
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["nats-server", "--signal", f"ldm={pid_file}"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert pid_file.rsplit("/", 1)[0] in mounts, "the pid file needs a writable volume"


def test_jetstream_store_is_on_the_claim(objects: list[Obj]) -> None:
    conf = deployed_conf(objects)
    store = setting(conf, "store_dir")
    (container,) = containers(one(objects, "StatefulSet", "nats"))
    data = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data")
    assert store.startswith(data + "/")


def test_max_payload_is_the_one_the_relay_sizes_its_requests_to(objects: list[Obj]) -> None:
    assert int(setting(deployed_conf(objects), "max_payload")) == NATS_MAX_PAYLOAD


def test_the_deployed_server_fsyncs_every_write_before_acknowledging_it(objects: list[Obj], tmp_path: Path) -> None:
    # The default sync_interval (2 min) acknowledges before the write is on disk: a power cut of the whole
    # cluster loses acknowledged events, whose outbox rows the relay has already deleted.
    server = start_deployed_nats(objects, tmp_path, example_secrets())
    try:
        varz = httpx.get(f"http://127.0.0.1:{server.http_port}/varz", timeout=5).json()
    finally:
        server.stop()
    assert varz["jetstream"]["config"]["sync_always"] is True
    # The fixes that followed Jepsen's analysis of 2.12.1 are in 2.12.3 and later: the wheel and the image.
    assert tuple(int(part) for part in varz["version"].split(".")[:3]) >= (2, 12, 3)
    (container,) = containers(one(objects, "StatefulSet", "nats"))
    image = re.fullmatch(r"nats:(\d+)\.(\d+)\.(\d+)(-\w+)?", container["image"])
    assert image and tuple(int(part) for part in image.groups()[:3]) >= (2, 12, 3), container["image"]
