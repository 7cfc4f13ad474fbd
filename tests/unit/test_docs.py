"""The README stays a short user's guide, its links and the docs' links resolve, and every setting is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.processes import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")
# The reader functions of shared/config.py; their second argument is the variable's name.
ENV_READERS = {"env_str", "env_secret", "env_int", "env_float", "env_bool", "env_list"}


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    for line in prose(path.read_text()):
        heading = re.match(r"#{1,6} (.+)", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def broken_links(path: Path) -> list[str]:
    broken = []
    for line in prose(path.read_text()):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.name}: {target} (no such heading)")
    return broken


def settings_read_from_the_environment() -> set[str]:
    names = set()
    for source in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ENV_READERS and len(node.args) >= 2:
                name = node.args[1]
            elif called == "get" and node.args and re.search(r"\benv\b|environ", ast.unparse(func)):
                name = node.args[0]
            else:
                continue
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                names.add(name.value)
    return names


def test_the_readme_reads_in_ten_minutes() -> None:
    words = [word for word in README.read_text().split() if re.search(r"[A-Za-z0-9]", word)]
    assert len(words) <= 2_500, f"the README has {len(words)} words; move detail to docs/"


def test_every_link_in_the_readme_and_the_docs_resolves() -> None:
    broken = [link for page in [README, *DOCS] for link in broken_links(page)]
    assert not broken, broken


def test_every_setting_read_from_the_environment_is_in_the_configuration_reference() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    names = settings_read_from_the_environment()
    assert {"DATABASE_URL", "WORKER_CONCURRENCY", "LOG_COLOUR", "OTEL_SDK_DISABLED"} <= names, "the scan finds them"
    missing = sorted(name for name in names if f"`{name}`" not in reference)
    assert not missing, f"docs/configuration.md does not document {missing}"
