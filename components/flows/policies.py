"""NetworkPolicies from the declared flows: in each of the facility's namespaces ingress is denied
by default and allowed, per target, from exactly the declared sources on the declared ports; pods
that run users' code may reach anything but the cloud's metadata service. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..names import METADATA_CIDR
from .declaration import Flow, Peer

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
"""Every namespace's own name, set by the API server: how a policy selects a namespace."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _selector(pods: dict[str, str] | Any) -> dict[str, Any]:
    return {"matchLabels": dict(pods)} if pods else {}


def _source(peer: Peer) -> list[dict[str, Any]]:
    """The `from` entries that select `peer`."""
    if peer.outside:
        return [{"ipBlock": {"cidr": cidr}} for cidr in peer.cidrs]
    entry: dict[str, Any] = {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: peer.namespace}}}
    if peer.pods:
        entry["podSelector"] = _selector(peer.pods)
    return [entry]


def _policy(name: str, namespace: str, pods: Any, types: list[str], **rules: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": _selector(pods), "policyTypes": types, **rules},
    }


def ingress_policies(flows: Iterable[Flow], namespace: str) -> list[dict[str, Any]]:
    """Default deny for ingress in `namespace`, then one policy per target admitting its flows."""
    policies = [_policy("af-default-deny-ingress", namespace, {}, ["Ingress"], ingress=[])]
    targets: dict[str, list[Flow]] = {}
    for flow in flows:
        if flow.target.namespace == namespace:
            targets.setdefault(flow.target.name, []).append(flow)
    for target, into in sorted(targets.items()):
        rules = []
        for flow in into:
            rule: dict[str, Any] = {"from": _source(flow.source)}
            if flow.ports:
                rule["ports"] = [{"protocol": "TCP", "port": port} for port in flow.ports]
            rules.append(rule)
        policies.append(
            _policy(f"af-allow-{_slug(target)}", namespace, into[0].target.pods, ["Ingress"], ingress=rules)
        )
    return policies


def no_metadata_policy(peer: Peer) -> dict[str, Any]:
    """`peer`'s pods may connect anywhere, in the cluster or out, but to the metadata service."""
    assert peer.namespace is not None
    everywhere = [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [METADATA_CIDR]}}]},
        # Pods and Services in the cluster, which an ipBlock need not match.
        {"to": [{"namespaceSelector": {}}]},
    ]
    return _policy(f"af-no-metadata-{_slug(peer.name)}", peer.namespace, peer.pods, ["Egress"], egress=everywhere)


def network_policies(flows: list[Flow], namespaces: Iterable[str], user_code: Iterable[Peer]) -> dict[str, list[dict]]:
    """Every policy, by namespace, for the facility's `namespaces`."""
    found = {ns: ingress_policies(flows, ns) for ns in sorted(namespaces)}
    for peer in user_code:
        found[peer.namespace].append(no_metadata_policy(peer))
    return found
