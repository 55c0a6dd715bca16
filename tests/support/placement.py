"""Where a plan's pods may run: the nodes as the stack registers them (labels, taints) and every
pod the plan places (our workloads, and the charts' as our values place them), with Kubernetes'
own filters for node selectors, required node affinity and taints.

Nodes come from the plan, not from a second copy of the rules: in mode `openstack` from each
instance's metadata (the labels and taints its k3s config registers), in mode `magnum` from the
node labeller's config (Magnum's node group name is the only label Magnum sets) and the Magnum
node groups' counts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from support import charts

INSTANCE = "openstack:compute/instance:Instance"
MAGNUM_CLUSTER = "openstack:containerinfra/cluster:Cluster"
MAGNUM_NODE_GROUP = "openstack:containerinfra/nodeGroup:NodeGroup"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
WORKLOADS = {
    "kubernetes:apps/v1:Deployment": "Deployment",
    "kubernetes:apps/v1:StatefulSet": "StatefulSet",
    "kubernetes:apps/v1:DaemonSet": "DaemonSet",
    "kubernetes:batch/v1:Job": "Job",
}
LABEL_PREFIX = "af-node-label:"
TAINTS = "af-node-taints"


@dataclass(frozen=True)
class Node:
    name: str
    group: str
    labels: Mapping[str, str]
    taints: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class Pod:
    owner: str
    """`Kind namespace/name` of what creates the pod."""
    spec: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    chart: str | None = None


def _builtin(name: str) -> dict[str, str]:
    """Labels every kubelet sets on its node."""
    return {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def _taint(text: str) -> dict[str, str]:
    """`key[=value]:Effect` as a taint."""
    head, effect = text.rsplit(":", 1)
    key, _, value = head.partition("=")
    return {"key": key, "value": value, "effect": effect}


def nodes(plan: dict[str, Any]) -> list[Node]:
    """Every node the plan makes, with the labels and taints it registers with."""
    found = []
    resources = plan["resources"]
    for r in resources:
        if r["type"] != INSTANCE:
            continue
        meta, name = r["inputs"]["metadata"], r["inputs"]["name"]
        labels = {k.removeprefix(LABEL_PREFIX): v for k, v in meta.items() if k.startswith(LABEL_PREFIX)}
        taints = tuple(_taint(t) for t in meta.get(TAINTS, "").split(",") if t)
        found.append(Node(name, meta["af-role"], _builtin(name) | labels, taints))
    found += _magnum_nodes(resources)
    found += _virtual_nodes(resources)
    return found


def _virtual_nodes(resources: list[dict[str, Any]]) -> list[Node]:
    """An offload gateway's virtual node, with the labels and taints its virtual kubelet's config
    gives it (interLink registers them as written there)."""
    found = []
    for r in resources:
        data = r["inputs"].get("data") or {} if r["type"] == CONFIG_MAP else {}
        if "InterLinkConfig.yaml" not in data:
            continue
        config = yaml.safe_load(data["InterLinkConfig.yaml"])
        name = r["inputs"]["metadata"]["name"]
        labels = dict(label.split("=", 1) for label in config["NodeLabels"])
        taints = tuple({"key": t["Key"], "value": t["Value"], "effect": t["Effect"]} for t in config["NodeTaints"])
        found.append(Node(name, name, _builtin(name) | labels, taints))
    return found


def _magnum_nodes(resources: list[dict[str, Any]]) -> list[Node]:
    counts: dict[str, int] = {}
    for r in resources:
        if r["type"] == MAGNUM_CLUSTER:
            counts["default-worker"] = r["inputs"]["nodeCount"]
        elif r["type"] == MAGNUM_NODE_GROUP:
            counts[r["inputs"]["name"]] = r["inputs"]["nodeCount"]
    if not counts:
        return []
    labellers = [r for r in resources if r["type"] == CONFIG_MAP and "config.json" in (r["inputs"].get("data") or {})]
    # Without the labeller a node keeps only what Magnum gives it.
    config = json.loads(labellers[0]["inputs"]["data"]["config.json"]) if labellers else {"groups": {}}
    config.setdefault("selector", "magnum.openstack.org/nodegroup")
    found = []
    for group, count in sorted(counts.items()):
        entry = config["groups"].get(group, {"labels": {}, "taints": []})
        for index in range(count):
            name = f"{group}-{index}"
            labels = _builtin(name) | {config["selector"]: group} | entry["labels"]
            found.append(Node(name, group, labels, tuple(entry["taints"])))
    return found


def pods(plan: dict[str, Any]) -> Iterator[Pod]:
    """Every pod the plan places: our workloads' templates and the charts' stand-ins."""
    for r in plan["resources"]:
        kind = WORKLOADS.get(r["type"])
        if kind is None:
            continue
        meta, template = r["inputs"]["metadata"], r["inputs"]["spec"]["template"]
        yield Pod(f"{kind} {meta['namespace']}/{meta['name']}", template["spec"], template["metadata"]["labels"])
    for release in charts.releases(plan):
        for stand_in in charts.workloads(release.chart, release.values, release.name, release.namespace):
            pod = stand_in.pod()
            yield Pod(
                f"{stand_in.kind} {stand_in.namespace}/{stand_in.name} (chart {release.chart})",
                pod["spec"],
                pod["metadata"]["labels"],
                release.chart,
            )


def tolerated(taint: Mapping[str, str], tolerations: list[dict[str, Any]]) -> bool:
    """Kubernetes' rule: an empty key with Exists tolerates everything; the effect must match
    unless the toleration leaves it empty; Equal compares the value."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint["key"]:
                return True
        elif t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for expr in term.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and value is None:
            return False
        if op == "DoesNotExist" and value is not None:
            return False
    return True


def admits(node: Node, spec: Mapping[str, Any]) -> list[str]:
    """Why `node` cannot run a pod of `spec` (empty: it can), as Kubernetes' filters see it:
    the node selector, required node affinity, and NoSchedule/NoExecute taints."""
    why = [f"label {k}={v}" for k, v in (spec.get("nodeSelector") or {}).items() if node.labels.get(k) != v]
    required = (
        (spec.get("affinity") or {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    if required and not any(_term_matches(t, node.labels) for t in required["nodeSelectorTerms"]):
        why.append("its required node affinity")
    tolerations = spec.get("tolerations") or []
    why += [
        f"toleration of {t['key']}:{t['effect']}"
        for t in node.taints
        if t["effect"] in ("NoSchedule", "NoExecute") and not tolerated(t, tolerations)
    ]
    return why


def requests_gpus(spec: Mapping[str, Any]) -> bool:
    containers = [*spec.get("containers", []), *spec.get("initContainers", [])]
    return any("nvidia.com/gpu" in (c.get("resources", {}).get("limits") or {}) for c in containers)
