"""The wiring of the facility as one, class by class, for every shipped stack and the variants
that turn on what the shipped stacks leave off: every namespaced object waits for its
Namespace, every workload has a node it may run on, and the network policies allow exactly the
declared flows."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import SHIPPED_STACKS, preview_values, stack_values
from support import placement
from support.gateways import galileo, leonardo

from afctl.plan import plan_document
from components.config.errors import ConfigError
from components.config.loader import build_config
from components.names import (
    GATEWAY_LABEL,
    GPU_TAINT_KEY,
    GPU_TOLERATION,
    NODE_GROUP_LABEL,
    NODE_LABELLER,
    NODE_LABELLER_NAMESPACE,
    role_label,
)

NAMESPACE = "kubernetes:core/v1:Namespace"
RELEASE = "kubernetes:helm.sh/v3:Release"


def variant(name: str) -> tuple[str, dict[str, Any], set[str]]:
    """A shipped stack with what it leaves off turned on: the autoscaler, offload gateways, the
    cache with an upstream credential and node caches, the in-cluster squid."""
    if name != "cms-bari-full":
        values, secret = stack_values(name)
        return name, values, secret
    values, secret = stack_values("cms-bari")
    values = copy.deepcopy(values)
    values["autoscaler"] = {"enabled": True, "image": "registry.example.org/af-autoscaler:1.0"}
    values["offload"] = {"gateways": {"leonardo": leonardo(), "galileo": galileo()}}
    values["identity"] = {"clientSecret": "identity-secret"}
    values["cache"] = {
        "enabled": True,
        "upstream": {"kind": "bearer-token", "clientId": "cache", "clientSecret": "x"},
        "nodeLocal": {
            "enabled": True,
            "filesMax": "20g",
            "client": {"clientId": "node-cache", "clientSecret": "node-cache-secret-7f3a"},
        },
    }
    values["cvmfs"] = {"squidProxy": True}
    return "cms-bari", values, secret | {"offload", "identity", "cache"}


STACKS = [*SHIPPED_STACKS, "cms-bari-full"]
_PLANS: dict[str, dict[str, Any]] = {}


def plan_of(name: str) -> dict[str, Any]:
    if name not in _PLANS:
        stack, values, secret = variant(name)
        _PLANS[name] = plan_document(preview_values(stack, values, secret))
    return _PLANS[name]


def _closure(urn: str, by_urn: dict[str, dict[str, Any]]) -> Iterator[str]:
    seen, todo = set(), [urn]
    while todo:
        for dep in by_urn[todo.pop()]["dependencies"]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
                yield dep


def _namespace_of(resource: dict[str, Any]) -> str | None:
    inputs = resource["inputs"]
    if resource["type"] == RELEASE:
        return inputs.get("namespace")
    if resource["type"].startswith("kubernetes:") and resource["type"] != NAMESPACE:
        metadata = inputs.get("metadata")
        return metadata.get("namespace") if isinstance(metadata, dict) else None
    return None


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespaced_object_waits_for_its_namespace(stack):
    """Created before its Namespace, an object fails; only the provider's retries would hide it.
    A namespace a chart creates (cert-manager's) counts through that chart's release."""
    resources = plan_of(stack)["resources"]
    by_urn = {r["urn"]: r for r in resources}
    makers: dict[str, set[str]] = {}
    for r in resources:
        if r["type"] == NAMESPACE:
            makers.setdefault(r["inputs"]["metadata"]["name"], set()).add(r["urn"])
        elif r["type"] == RELEASE and r["inputs"].get("createNamespace"):
            makers.setdefault(r["inputs"]["namespace"], set()).add(r["urn"])
    missing = []
    for r in resources:
        namespace = _namespace_of(r)
        if namespace is None or r["urn"] in makers.get(namespace, set()):
            continue
        if not makers.get(namespace, set()) & set(_closure(r["urn"], by_urn)):
            missing.append(f"{r['name']} ({r['type']}) in {namespace}")
    assert missing == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_workload_has_a_node_it_may_run_on(stack):
    """Ours and the charts' as our values place them: each finds a node of the stack whose labels
    satisfy its node selector and affinity and whose taints it tolerates. A failure names the
    workload and what no node offers it."""
    plan = plan_of(stack)
    nodes = placement.nodes(plan)
    assert nodes, "the plan makes no node"
    homeless = []
    for pod in placement.pods(plan):
        reasons = [placement.admits(node, pod.spec) for node in nodes]
        if all(reasons):
            closest = min(reasons, key=len)
            homeless.append(f"{pod.owner}: no node has {', '.join(closest)}")
    assert homeless == []


@pytest.mark.parametrize("stack", STACKS)
def test_only_gpu_pods_and_node_agents_may_land_on_gpu_nodes(stack):
    """A pod that requests no GPU would see all of a node's GPUs: only GPU pods, and the
    DaemonSets of node agents, are admitted by GPU nodes."""
    plan = plan_of(stack)
    gpu_nodes = [n for n in placement.nodes(plan) if any(t["key"] == GPU_TAINT_KEY for t in n.taints)]
    intruders = sorted(
        {
            pod.owner
            for pod in placement.pods(plan)
            if not placement.requests_gpus(pod.spec) and not pod.owner.startswith("DaemonSet ")
            for node in gpu_nodes
            if not placement.admits(node, pod.spec)
        }
    )
    assert intruders == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_is_placed_by_role_not_left_to_chance(stack):
    """Besides node agents (DaemonSets), every pod selects the nodes meant for it by the labels the
    node groups register (a role, a group, a gateway's virtual node): a service left without a
    selector lands on any untainted node, a batch worker's or a notebook's. The one exception
    is Magnum's node labeller, which runs before any node has those labels."""
    meant = (role_label("system")[: -len("system")], NODE_GROUP_LABEL, GATEWAY_LABEL)
    unplaced = sorted(
        pod.owner
        for pod in placement.pods(plan_of(stack))
        if not pod.owner.startswith("DaemonSet ")
        and pod.owner != f"Deployment {NODE_LABELLER_NAMESPACE}/{NODE_LABELLER}"
        and not any(key.startswith(meant) for key in (pod.spec.get("nodeSelector") or {}))
    )
    assert unplaced == []


def test_a_stack_without_system_nodes_is_refused_with_the_role_named():
    _, values, secret = variant("dev")
    values["cluster"]["nodeGroups"]["cpu"]["roles"] = ["interactive", "batch"]
    with pytest.raises(ConfigError) as error:
        build_config(values, secret)
    assert any(
        p.path == "af:cluster.nodeGroups" and "a node group with role system" in p.allowed for p in error.value.problems
    ), error.value.lines()


def test_the_placement_check_can_fail():
    """A workload selecting a role no node carries is reported with the label it misses."""
    node = placement.Node("n", "cpu", {"af.infn.it/role-batch": "true"}, ())
    assert placement.admits(node, {"nodeSelector": {"af.infn.it/role-system": "true"}}) == [
        "label af.infn.it/role-system=true"
    ]
    tainted = placement.Node("g", "gpu", {}, ({"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"},))
    assert placement.admits(tainted, {}) == [f"toleration of {GPU_TAINT_KEY}:NoSchedule"]
    assert placement.admits(tainted, {"tolerations": [dict(GPU_TOLERATION)]}) == []
