"""A small NetworkPolicy evaluator: may this peer open a connection to that one on this port?"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Peer:
    """A pod (labels and namespace labels) or an address outside the cluster (labels None)."""

    name: str
    labels: dict[str, str] | None = None
    namespace: dict[str, str] | None = None
    ip: str = "10.0.0.1"
    in_policy_namespace: bool = False


def selects(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    if labels is None:
        return False
    if not selector:
        return True
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(entry: Obj, peer: Peer) -> bool:
    if "ipBlock" in entry:
        block = entry["ipBlock"]
        address = ipaddress.ip_address(peer.ip)
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.labels is None:
        return False
    if "namespaceSelector" in entry:
        if not selects(entry["namespaceSelector"], peer.namespace):
            return False
    elif not peer.in_policy_namespace:
        return False
    return "podSelector" not in entry or selects(entry["podSelector"], peer.labels)


def _port_matches(rule_ports: list[Obj] | None, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        start = entry["port"]
        assert isinstance(start, int), "named ports are not evaluated here: use numbers"
        if start <= port <= entry.get("endPort", start):
            return True
    return False


def _allowed(policies: list[Obj], direction: str, subject: Peer, other: Peer, port: int, protocol: str) -> bool:
    kind = "Ingress" if direction == "ingress" else "Egress"
    peers_key = "from" if direction == "ingress" else "to"
    applying = [
        p
        for p in policies
        if kind in p["spec"].get("policyTypes", ["Ingress"]) and selects(p["spec"]["podSelector"], subject.labels)
    ]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get(direction, []):
            peers = rule.get(peers_key)
            if (not peers or any(_peer_matches(e, other) for e in peers)) and _port_matches(
                rule.get("ports"), port, protocol
            ):
                return True
    return False


def connection_allowed(policies: list[Obj], source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
    """Both ends must agree: the source's egress policies and the target's ingress policies."""
    if source.in_policy_namespace and not _allowed(policies, "egress", source, target, port, protocol):
        return False
    return not (target.in_policy_namespace and not _allowed(policies, "ingress", target, source, port, protocol))
