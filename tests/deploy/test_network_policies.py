"""Who may talk to whom, computed from the rendered NetworkPolicies."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import Obj, find, one, pod_labels, render
from tests.deploy.netpol import Peer, connection_allowed

NAMESPACE = {"kubernetes.io/metadata.name": "incidents"}


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return render()


@pytest.fixture(scope="module")
def policies(objects: list[Obj]) -> list[Obj]:
    return find(objects, "NetworkPolicy")


@pytest.fixture(scope="module")
def peers(objects: list[Obj]) -> dict[str, Peer]:
    def pod(kind: str, name: str) -> Peer:
        return Peer(name, pod_labels(one(objects, kind, name)), NAMESPACE, "10.0.0.9", in_policy_namespace=True)

    return {
        "api": pod("Deployment", "incidents-api"),
        "eventhandler": pod("Deployment", "incidents-eventhandler"),
        "jira": pod("Deployment", "incidents-worker-jira"),
        "slack": pod("Deployment", "incidents-worker-slack"),
        "zendesk": pod("Deployment", "incidents-worker-zendesk"),
        "webhooks": pod("Deployment", "incidents-worker-webhooks"),
        "migrate": pod("Job", "incidents-migrate"),
        "nats": pod("StatefulSet", "nats"),
        "mariadb": pod("StatefulSet", "mariadb"),
        "nats-box": pod("Deployment", "nats-box"),
        "internet": Peer("internet", ip="203.0.113.7"),
        "internet6": Peer("internet6", ip="2606:4700::1111"),
        "metadata": Peer("metadata", ip="169.254.169.254"),
        "private": Peer("private", ip="10.20.30.40"),
        "private6": Peer("private6", ip="fd00::1"),
        "prometheus": Peer("prometheus", {"app": "prometheus"}, {"kubernetes.io/metadata.name": "monitoring"}),
        "other-namespace": Peer("other", {"app": "x"}, {"kubernetes.io/metadata.name": "default"}),
    }


ALLOWED = [
    ("internet", "api", 8000),
    ("other-namespace", "api", 8000),
    ("api", "nats", 4222),
    ("api", "mariadb", 3306),
    ("eventhandler", "nats", 4222),
    ("jira", "nats", 4222),
    ("slack", "nats", 4222),
    ("zendesk", "nats", 4222),
    ("jira", "internet", 443),
    ("slack", "internet", 443),
    ("zendesk", "internet", 443),
    ("webhooks", "nats", 4222),
    ("webhooks", "internet", 443),
    ("webhooks", "internet", 80),
    ("webhooks", "internet6", 443),
    ("prometheus", "webhooks", 8080),
    ("migrate", "mariadb", 3306),
    ("nats", "nats", 6222),
    ("nats-box", "nats", 4222),
    ("nats-box", "nats", 8222),
    ("prometheus", "eventhandler", 8080),
    ("prometheus", "jira", 8080),
    ("prometheus", "api", 8000),
    ("prometheus", "nats", 8222),
]

DENIED = [
    ("internet", "nats", 4222),
    ("internet", "mariadb", 3306),
    ("internet", "eventhandler", 8080),
    ("internet", "jira", 8080),
    ("other-namespace", "nats", 4222),
    ("other-namespace", "mariadb", 3306),
    ("eventhandler", "mariadb", 3306),
    ("jira", "mariadb", 3306),
    ("nats-box", "mariadb", 3306),
    ("api", "nats", 6222),
    ("jira", "nats", 6222),
    ("migrate", "nats", 4222),
    ("mariadb", "nats", 4222),
    ("api", "internet", 443),
    ("eventhandler", "internet", 443),
    ("nats", "internet", 443),
    ("mariadb", "internet", 443),
    ("migrate", "internet", 443),
    ("jira", "internet", 80),
    ("jira", "slack", 8080),
    ("api", "eventhandler", 8080),
    ("other-namespace", "jira", 8080),
    ("jira", "api", 8000),
    ("eventhandler", "api", 8000),
    ("nats-box", "api", 8000),
    ("webhooks", "metadata", 80),
    ("webhooks", "private", 443),
    ("webhooks", "private6", 80),
    ("webhooks", "mariadb", 3306),
    ("webhooks", "api", 8000),
    ("webhooks", "internet", 8080),
    ("internet", "webhooks", 8080),
]


@pytest.mark.parametrize(("source", "target", "port"), ALLOWED)
def test_allowed(policies: list[Obj], peers: dict[str, Peer], source: str, target: str, port: int) -> None:
    assert connection_allowed(policies, peers[source], peers[target], port)


@pytest.mark.parametrize(("source", "target", "port"), DENIED)
def test_denied(policies: list[Obj], peers: dict[str, Peer], source: str, target: str, port: int) -> None:
    assert not connection_allowed(policies, peers[source], peers[target], port)


def test_dns_is_allowed_for_every_pod(policies: list[Obj], peers: dict[str, Peer]) -> None:
    dns = Peer("kube-dns", {"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
    for name, peer in peers.items():
        if peer.in_policy_namespace:
            assert connection_allowed(policies, peer, dns, 53, "UDP"), name
            assert connection_allowed(policies, peer, dns, 53, "TCP"), name


def test_default_deny_covers_both_directions(policies: list[Obj]) -> None:
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not p["spec"].get("egress") for p in deny)
