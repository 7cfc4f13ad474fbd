"""The kustomize base and the dev overlay render, and every object is valid for the Kubernetes API."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import BASE, DEV_OVERLAY, SECRET_EXAMPLE, render

# The oldest version we support (the API's preStop `sleep` action is on by default from 1.30)
# and the newest one the installed kubernetes-validate ships.
OLDEST = "1.30.0"


def versions() -> list[str]:
    newest = kubernetes_validate.utils.latest_version()
    return [OLDEST, newest] if newest != OLDEST else [OLDEST]


@pytest.mark.parametrize("path", [BASE, DEV_OVERLAY], ids=["base", "dev"])
def test_renders(path: Path) -> None:
    objects = render(path)
    kinds = {obj["kind"] for obj in objects}
    assert {"Namespace", "StatefulSet", "Deployment", "Job", "Service", "NetworkPolicy"} <= kinds
    assert all(obj["metadata"].get("namespace") == "incidents" for obj in objects if obj["kind"] != "Namespace")


@pytest.mark.parametrize("version", versions())
@pytest.mark.parametrize("path", [BASE, DEV_OVERLAY], ids=["base", "dev"])
def test_every_object_validates_strictly(path: Path, version: str) -> None:
    failures = []
    for obj in render(path):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not failures, "\n".join(failures)


def test_example_secret_validates_and_is_not_deployed() -> None:
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text())
    kubernetes_validate.validate(secret, OLDEST, strict=True)
    assert not [o for o in render(BASE) if o["kind"] == "Secret"], "the base must not ship a Secret"
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
