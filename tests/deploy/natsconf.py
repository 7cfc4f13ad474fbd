"""The deployed nats.conf, made runnable as one loopback server with its accounts and permissions untouched."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.manifests import Obj, one

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
