"""Read the Dockerfile's final stage (ENV, WORKDIR, ENTRYPOINT, CMD, COPY) and apply .dockerignore, offline."""

from __future__ import annotations

import functools
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: str


@dataclass
class ImageConfig:
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: str = ""
    args: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str, str]] = field(default_factory=list)
    """(sources, destination, --from stage or "") of each COPY."""


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Logical lines (continuations joined, comments dropped), each with the stage it belongs to."""
    found: list[Instruction] = []
    stage = ""
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            stage = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else parts[0]
        found.append(Instruction(keyword, rest.strip(), stage))
    return found


def _substitute(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), value)


def _exec_form(text: str) -> list[str]:
    value = json.loads(text) if text.startswith("[") else ["/bin/sh", "-c", text]
    assert isinstance(value, list)
    return [str(v) for v in value]


@functools.cache
def image_config(path: Path = DOCKERFILE) -> ImageConfig:
    """What `docker inspect` would show for the final stage (only the instructions we use)."""
    all_instructions = instructions(path)
    final_stage = all_instructions[-1].stage
    global_args = {}
    for ins in all_instructions:
        if ins.stage:
            break
        if ins.keyword == "ARG" and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            global_args[key] = value
    config = ImageConfig()
    for ins in all_instructions:
        if ins.stage != final_stage:
            continue
        variables = {**global_args, **config.args, **config.env}
        if ins.keyword == "ARG":
            key, _, value = ins.args.partition("=")
            config.args[key] = _substitute(value, variables)
        elif ins.keyword == "ENV":
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                config.env[key] = _substitute(value, variables)
        elif ins.keyword == "WORKDIR":
            config.workdir = str(Path(config.workdir) / _substitute(ins.args, variables))
        elif ins.keyword == "ENTRYPOINT":
            config.entrypoint = _exec_form(ins.args)
            config.cmd = []
        elif ins.keyword == "CMD":
            config.cmd = _exec_form(ins.args)
        elif ins.keyword == "USER":
            config.user = _substitute(ins.args, variables)
        elif ins.keyword == "COPY":
            tokens = shlex.split(ins.args)
            options = [t for t in tokens if t.startswith("--")]
            paths = [t for t in tokens if not t.startswith("--")]
            source_stage = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), "")
            dest = paths[-1]
            if not dest.startswith("/"):
                dest = str(Path(config.workdir) / dest)
            config.copies.append((paths[:-1], dest, source_stage))
    return config


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `*` within a path segment, `**` across segments."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def ignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        rules.append((negated, _pattern(pattern.strip("/"))))
    return rules


def in_build_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]] | None = None) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    rules = ignore_rules() if rules is None else rules
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negated
    return not excluded
