"""Rules every rendered workload must follow: hardening, probes, resources, secrets, budgets, labels."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.manifests import (
    APP_IMAGE,
    SECRET_EXAMPLE,
    Obj,
    all_containers,
    app_workloads,
    containers,
    find,
    one,
    pod_labels,
    pod_spec,
    referenced_vars,
    render,
    workloads,
)
from tests.deploy.netpol import selects

# Containers that serve nothing to probe for liveness: nats-box idles until an operator execs in.
NO_LIVENESS = {("nats-box", "nats-box")}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL|API_KEY", re.I)
APP_DRAIN_SECONDS = 20


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return render()


def test_pods_are_restricted(objects: list[Obj]) -> None:
    """The `restricted` Pod Security Standard, which the namespace also enforces."""
    namespace = one(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, name
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert isinstance(pod_sc.get("runAsUser"), int) and pod_sc["runAsUser"] > 0, name
        assert spec.get("automountServiceAccountToken") is False, f"{name}: no pod here talks to the API server"
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, name
        for container in containers(workload):
            sc = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert sc.get("privileged") is not True, where


def test_writable_paths_are_volumes(objects: list[Obj]) -> None:
    """A read-only root filesystem: /tmp (Python's tempfile) is an emptyDir for our image."""
    for workload in app_workloads(objects):
        for container in containers(workload):
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{workload['metadata']['name']}: mount an emptyDir on /tmp"


def test_containers_have_resources_and_pinned_images(objects: list[Obj]) -> None:
    for workload, container in all_containers(objects):
        where = f"{workload['metadata']['name']}/{container['name']}"
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(section, {})), f"{where}: {section} cpu and memory"
        image = container["image"]
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"{where}: pin the image tag ({image})"


def test_long_running_containers_have_probes(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        if workload["kind"] == "Job":
            continue
        for container in containers(workload):
            key = (workload["metadata"]["name"], container["name"])
            assert "readinessProbe" in container, f"{key}: readinessProbe"
            if key not in NO_LIVENESS:
                assert "livenessProbe" in container, f"{key}: livenessProbe"


def test_app_probes_hit_the_health_endpoints(objects: list[Obj]) -> None:
    for workload in app_workloads(objects):
        if workload["kind"] == "Job":
            continue
        for container in containers(workload):
            names = {p["name"] for p in container["ports"]}
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert container[probe]["httpGet"]["port"] in names


def test_secret_values_come_from_secret_refs(objects: list[Obj]) -> None:
    for workload, container in all_containers(objects):
        env = container.get("env", [])
        from_secret = {v["name"] for v in env if "secretKeyRef" in v.get("valueFrom", {})}
        for var in env:
            where = f"{workload['metadata']['name']}/{container['name']}: {var['name']}"
            if SECRET_NAME.search(var["name"]):
                assert var["name"] in from_secret, f"{where} must come from a secretKeyRef"
            value = str(var.get("value", ""))
            if "://" in value and "@" in value:
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                assert ":" not in userinfo or referenced_vars(userinfo) <= from_secret, where
                assert referenced_vars(userinfo), f"{where}: the URL's password must be a $(VAR) from a Secret"
        assert not container.get("envFrom"), "envFrom hides which keys a container gets"


def test_dependent_env_vars_are_defined_first(objects: list[Obj]) -> None:
    """`$(VAR)` only expands a variable defined earlier in the list."""
    for workload, container in all_containers(objects):
        defined: set[str] = set()
        for var in container.get("env", []):
            missing = referenced_vars(str(var.get("value", ""))) - defined
            assert not missing, f"{workload['metadata']['name']}: {var['name']} uses {missing} before it is defined"
            assert var["name"] not in defined, f"{workload['metadata']['name']}: {var['name']} set twice"
            defined.add(var["name"])


def test_secret_refs_match_the_example_secret(objects: list[Obj]) -> None:
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    keys = set(example["stringData"])
    used: dict[str, bool] = {}
    for _, container in all_containers(objects):
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == example["metadata"]["name"]
                used[ref["key"]] = used.get(ref["key"], False) or not ref.get("optional", False)
    assert set(used) == keys, f"unused in example: {keys - set(used)}; missing from example: {set(used) - keys}"
    optional = {k for k, required in used.items() if not required}
    # Optional: a worker without its vendor token runs dry; without integration keys, Events v2 refuses all;
    # without a vendor's signing secret, its two-way route answers 404.
    assert optional == {
        "jira-api-token",
        "slack-bot-token",
        "zendesk-api-token",
        "integration-keys",
        "slack-signing-secret",
        "jira-webhook-secret",
        "zendesk-webhook-secret",
    }, optional


def test_example_passwords_are_safe_in_nats_conf_and_urls() -> None:
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())["stringData"]
    for key, value in example.items():
        if key.endswith("-password"):
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", value), f"{key}: letters and digits, a letter first"


def test_every_workload_has_a_disruption_budget(objects: list[Obj]) -> None:
    budgets = find(objects, "PodDisruptionBudget")
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        if workload["kind"] == "Job" or name == "mariadb":
            continue  # a Job finishes; one MariaDB with a budget would block every drain
        matching = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(workload))]
        assert len(matching) == 1, f"{name}: one PodDisruptionBudget, found {len(matching)}"
        assert matching[0]["spec"].get("maxUnavailable") == 1, name


def test_selectors_match_their_own_pods_only(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        if workload["kind"] == "Job":
            continue
        selector = workload["spec"]["selector"]
        assert set(selector["matchLabels"]) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
        assert selects(selector, pod_labels(workload))
        others = [w for w in workloads(objects) if w is not workload and selects(selector, pod_labels(w))]
        assert not others, f"{workload['metadata']['name']} also selects {others[0]['metadata']['name']}"


def test_services_reach_named_ports_of_their_pods(objects: list[Obj]) -> None:
    for service in find(objects, "Service"):
        pods = [w for w in workloads(objects) if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(w))]
        assert len(pods) == 1, f"service {service['metadata']['name']} selects {len(pods)} workloads"
        port_names = {p["name"] for c in containers(pods[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{service['metadata']['name']}: {port['targetPort']}"


def test_recommended_labels(objects: list[Obj]) -> None:
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        if obj["kind"] == "Namespace":
            continue
        assert labels.get("app.kubernetes.io/part-of") == "incidents", obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize", obj["metadata"]["name"]
    for workload in workloads(objects):
        labels = pod_labels(workload)
        for key in ("name", "instance", "component", "part-of"):
            assert f"app.kubernetes.io/{key}" in labels, f"{workload['metadata']['name']}: {key}"


def test_api_scales_with_its_autoscaler(objects: list[Obj]) -> None:
    hpa = one(objects, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    api = one(objects, "Deployment", target["name"])
    assert hpa["apiVersion"] == "autoscaling/v2" and target["kind"] == "Deployment"
    assert "replicas" not in api["spec"], "the autoscaler owns the replica count; apply would reset it"
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for container in containers(api):
        assert "cpu" in container["resources"]["requests"], "CPU utilisation is relative to requests"


def test_replicas(objects: list[Obj]) -> None:
    assert one(objects, "StatefulSet", "nats")["spec"]["replicas"] == 3
    for workload in find(objects, "Deployment"):
        name = workload["metadata"]["name"]
        if name.startswith(("incidents-eventhandler", "incidents-worker-")):
            assert workload["spec"]["replicas"] == 2, name


def test_graceful_shutdown_fits_the_grace_period(objects: list[Obj]) -> None:
    for workload in app_workloads(objects):
        if workload["kind"] == "Job":
            continue
        spec = pod_spec(workload)
        pre_stop = sum(
            c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0) for c in spec["containers"]
        )
        grace = spec["terminationGracePeriodSeconds"]
        assert pre_stop + APP_DRAIN_SECONDS < grace <= 60, f"{workload['metadata']['name']}: {pre_stop}+20 vs {grace}"
        for container in containers(workload):
            assert "exec" not in container.get("lifecycle", {}).get("preStop", {}), "the image has no shell"


def test_prometheus_annotations_point_at_metrics(objects: list[Obj]) -> None:
    for workload in app_workloads(objects):
        if workload["kind"] == "Job":
            continue
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        ports = {str(p["containerPort"]) for c in containers(workload) for p in c["ports"]}
        assert annotations["prometheus.io/port"] in ports


def test_migration_job(objects: list[Obj]) -> None:
    job = one(objects, "Job")
    assert job["spec"]["backoffLimit"] >= 3
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert pod_spec(job)["restartPolicy"] == "Never"
    (container,) = containers(job)
    assert container["image"].startswith(APP_IMAGE + ":")
    assert container["command"] == ["python", "-m", "alembic", "upgrade", "head"]
    assert container["workingDir"] == "/app"


def test_databases_keep_their_data_on_claims(objects: list[Obj]) -> None:
    for name, mount in (("nats", "/data"), ("mariadb", "/var/lib/mysql")):
        statefulset = one(objects, "StatefulSet", name)
        claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
        mounts = {m["name"]: m["mountPath"] for c in containers(statefulset) for m in c["volumeMounts"]}
        assert any(mounts.get(claim) == mount for claim in claims), name


def test_mariadb_binlog_is_row_based(objects: list[Obj]) -> None:
    (container,) = containers(one(objects, "StatefulSet", "mariadb"))
    assert "--binlog-format=ROW" in container["args"]
