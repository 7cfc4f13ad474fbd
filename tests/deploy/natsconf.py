"""The deployed nats.conf, made runnable as one loopback server with its accounts and permissions untouched."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.manifests import Obj, config_maps, container_env, containers, one
from tests.support.polling import eventually_sync
from tests.support.processes import Process, free_port, nats_server_binary, port_open

_VARIABLE = re.compile(r"(?<![\w\"])\$([A-Z][A-Z0-9_]*)\b")


def deployed_conf(objects: list[Obj]) -> str:
    """nats.conf as the rendered ConfigMap mounted by the NATS StatefulSet holds it."""
    statefulset = one(objects, "StatefulSet", "nats")
    volumes = statefulset["spec"]["template"]["spec"]["volumes"]
    name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
    text: str = one(objects, "ConfigMap", name)["data"]["nats.conf"]
    return text


def variables(conf: str) -> set[str]:
    """The `$NAME` references nats-server resolves from its environment (comments ignored)."""
    code = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    return set(_VARIABLE.findall(code))


def top_level_block(conf: str, name: str) -> str:
    """The text of the top-level `name { ... }` block (braces balanced, comments ignored)."""
    match = re.search(rf"^{name}\s*\{{", conf, flags=re.M)
    assert match, f"no top-level {name} block"
    depth = 0
    for i in range(match.start(), len(conf)):
        if conf[i] == "{":
            depth += 1
        elif conf[i] == "}":
            depth -= 1
            if depth == 0:
                return conf[match.start() : i + 1]
    raise AssertionError(f"unbalanced {name} block")


def routes(conf: str) -> list[str]:
    return re.findall(r"nats://[\w.-]+:\d+", top_level_block(conf, "cluster"))


def setting(conf: str, key: str) -> str:
    match = re.search(rf"^\s*{key}\s*[:=]?\s*(\S+)\s*$", conf, flags=re.M)
    assert match, f"no {key} in nats.conf"
    return match.group(1)


def _replace_line(conf: str, key: str, value: str) -> str:
    new, count = re.subn(rf"^(\s*){key}\s*[:=]?\s*\S+\s*$", rf"\g<1>{key}: {value}", conf, flags=re.M)
    assert count == 1, f"expected one `{key}` line in nats.conf, found {count}"
    return new


@dataclass
class LocalNats:
    conf: str
    port: int
    http_port: int


def localize(conf: str, workdir: Path, port: int, http_port: int) -> LocalNats:
    """Drop the cluster block and move listen/http/pid/store to loopback and `workdir`; keep the rest."""
    block = top_level_block(conf, "cluster")
    local = conf.replace(block, "# cluster block removed: one local server")
    local = _replace_line(local, "listen", f"127.0.0.1:{port}")
    local = _replace_line(local, "http", f"127.0.0.1:{http_port}")
    local = _replace_line(local, "pid_file", f'"{workdir / "nats.pid"}"')
    local = _replace_line(local, "store_dir", f'"{workdir / "jetstream"}"')
    return LocalNats(local, port, http_port)


@dataclass
class DeployedNats:
    """A nats-server running the deployed accounts and permissions on loopback."""

    url: str
    port: int
    passwords: dict[str, str]
    process: Process
    http_port: int = 0
    """The monitoring port (/varz, /jsz)."""

    def stop(self) -> None:
        self.process.stop()
        expected = ("Violation", "authentication error")  # what the permission tests provoke on purpose
        lines = self.process.output().splitlines()
        errors = [line for line in lines if "[ERR]" in line and not any(e in line for e in expected)]
        assert not errors, errors


def start_deployed_nats(objects: list[Obj], workdir: Path, secrets: Mapping[str, Mapping[str, str]]) -> DeployedNats:
    """Run the rendered nats.conf with the StatefulSet's env, whose secretKeyRefs resolve against `secrets`."""
    workdir.mkdir(parents=True, exist_ok=True)
    local = localize(deployed_conf(objects), workdir, free_port(), free_port())
    (workdir / "nats.conf").write_text(local.conf)
    (container,) = containers(one(objects, "StatefulSet", "nats"))
    env = container_env(container, config_maps(objects), secrets, {"metadata.name": "nats-0"})
    users = dict(re.findall(r"user:\s*(\w+)\s*[\n,]\s*password:\s*\$(\w+)", local.conf))
    passwords = {user: env[variable] for user, variable in users.items()}
    argv = [nats_server_binary(), "-c", str(workdir / "nats.conf")]
    process = Process("nats", argv, {**os.environ, **env}, workdir / "nats.log").start()
    try:
        eventually_sync(lambda: port_open(local.port), timeout=15, what="the deployed nats.conf to serve")
    except AssertionError:
        process.stop()
        raise AssertionError(process.output()[-3000:]) from None
    return DeployedNats(f"nats://127.0.0.1:{local.port}", local.port, passwords, process, local.http_port)
