"""What NetworkPolicies allow, evaluated the way Kubernetes defines them (networking.k8s.io/v1):
a pod selected by no policy of a type is open for that direction; a selected pod admits what any
selecting policy's rules admit; a connection needs the source's egress and the target's ingress.
A small, independent reading of the API's semantics, to check the facility's rendered policies
against the flows it declares (np-guard's analyzer checks the same with the real thing)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels) or an address outside the pod network."""

    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    ports: tuple[int, ...] = ()
    """Ports it listens on (a pod's container ports)."""

    @property
    def outside(self) -> bool:
        return self.namespace is None


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions); an empty selector selects everything."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, op = labels.get(expr["key"]), expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def _peer_matches(peer: Mapping[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False  # pods are selected by selectors; an ipBlock is for addresses outside
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(c) for c in block.get("except", [])
        )
    if other.outside:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not _selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False  # a podSelector alone selects pods of the policy's own namespace
    return _selects(peer.get("podSelector"), other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int) -> bool:
    if not ports:
        return True
    return any(p.get("port") in (None, port) and p.get("protocol", "TCP") == "TCP" for p in ports)


def _direction(policies: Iterable[Mapping[str, Any]], pod: Endpoint, other: Endpoint, port: int, kind: str) -> bool:
    """Whether `pod`'s policies of `kind` (Ingress, Egress) let it talk to `other` on `port`."""
    if pod.outside:
        return True
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and kind in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"].get("podSelector"), pod.labels)
    ]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(_peer_matches(p, other, pod.namespace) for p in peers)
            if peer_ok and _port_matches(rule.get("ports"), port):
                return True
    return False


def allowed(policies: list[Mapping[str, Any]], source: Endpoint, target: Endpoint, port: int) -> bool:
    """A connection from `source` to `target` on TCP `port`."""
    egress = _direction(policies, source, target, port, "Egress")
    return egress and _direction(policies, target, source, port, "Ingress")
