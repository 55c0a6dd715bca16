"""The whole facility on one VM (the shipped `single` stack): the control plane carries every role,
its HTCondor worker is sized to leave room for the rest, and everything the plan places fits."""

from __future__ import annotations

import copy

import pytest
from conftest import by_name, stack_values
from support import placement

from afctl.plan import plan_document
from components.batch.config import ROLE_RESERVE, worker_groups
from components.config.errors import ConfigError
from components.config.loader import build_config

FLAVOR_CORES, FLAVOR_GIB = 32, 128  # 4xlarge-highmem of stacks/sites/infn-cloud-bari.yaml


def _cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _gib(value: str) -> float:
    for unit, size in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * size / 2**30
    return float(value) / 2**30


def _requests(spec) -> tuple[float, float]:
    """A pod's requests as the scheduler counts them: its containers', or its largest init container's."""

    def of(container) -> tuple[float, float]:
        requests = (container.get("resources") or {}).get("requests") or {}
        return _cpu(str(requests.get("cpu", "0"))), _gib(str(requests.get("memory", "0")))

    run = [of(c) for c in spec.get("containers", [])]
    init = [of(c) for c in spec.get("initContainers") or []]
    cores = max(sum(c for c, _ in run), max((c for c, _ in init), default=0))
    gib = max(sum(m for _, m in run), max((m for _, m in init), default=0))
    return cores, gib


def test_one_vm_runs_every_role_and_is_a_worker_group(shipped):
    cfg = build_config(*stack_values("single"))
    assert cfg.cluster.node_groups == {} and set(cfg.cluster.control_plane.roles) == {
        "system",
        "interactive",
        "cache",
        "batch",
        "dask",
    }
    (group,) = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors).values()
    # The README's table: 0.5 + 1.5 + 2.5 + 2 + 1 + 3.5 cores, 10% + 3 + 8 + 12 + 6 + 11 GiB.
    assert group.name == "control-plane" and group.max_workers == 1
    assert group.pod_cpus == FLAVOR_CORES - 0.5 - 10.5
    assert group.pod_memory_mib == int((FLAVOR_GIB * 0.9 - 40.0) * 1024)
    assert sum(c for c, _ in ROLE_RESERVE.values()) == 10.5

    plan = plan_document(shipped("single"))
    (node,) = placement.nodes(plan)
    assert node.labels["af.infn.it/node-group"] == "control-plane" and not node.taints
    worker = by_name(shipped("single"), "af-condor-worker-control-plane")
    assert worker.inputs["spec"]["template"]["spec"]["nodeSelector"] == {"af.infn.it/node-group": "control-plane"}
    rbac = [r for r in plan["resources"] if r["type"] == "kubernetes:rbac.authorization.k8s.io/v1:Role"]
    names = [n for r in rbac for rule in r["inputs"]["rules"] for n in rule.get("resourceNames", [])]
    assert "af-condor-worker-control-plane" in names  # the autoscaler may scale it


def test_everything_the_plan_places_fits_the_one_vm(shipped):
    """Every pod may run on the VM (selectors, taints), and their requests, with the worker at
    its one replica, one notebook of the largest profile and one Dask cluster of the gateway's
    default sizes (a scheduler, two workers), fit what the node offers pods."""
    plan = plan_document(shipped("single"))
    (node,) = placement.nodes(plan)
    cores = gib = 0.0
    notebooks = []
    for pod in placement.pods(plan):
        assert not placement.admits(node, pod.spec), f"{pod.owner}: {placement.admits(node, pod.spec)}"
        c, m = _requests(pod.spec)
        if pod.owner.startswith("Pod jupyterhub/jupyter-"):
            notebooks.append((c, m))
            continue
        cores, gib = cores + c, gib + m
    largest = max(notebooks)
    dask = build_config(*stack_values("single")).dask
    assert dask.enabled
    cores += largest[0] + dask.scheduler.cores + 2 * dask.worker.cores
    gib += largest[1] + dask.scheduler.memory_gib + 2 * dask.worker.memory_gib
    assert cores <= FLAVOR_CORES - 0.5, cores
    assert gib <= FLAVOR_GIB * 0.9, gib
    # Not vacuous: the worker takes most of the VM.
    assert cores > FLAVOR_CORES * 0.8 and gib > FLAVOR_GIB * 0.7


def test_a_control_plane_too_small_for_a_worker_is_refused():
    values, secret = stack_values("single")
    values = copy.deepcopy(values)
    values["cluster"]["controlPlane"]["flavor"] = "xlarge"  # 8 vCPUs, 16 GiB
    with pytest.raises(ConfigError) as info:
        build_config(values, secret)
    found = {p.path: p for p in info.value.problems}
    assert "af:cluster.controlPlane.flavor" in found
    assert (
        "k3s's server and the control plane's other roles (10.5 cores, 40 GiB)"
        in found["af:cluster.controlPlane.flavor"].allowed
    )


def test_a_worker_sized_beyond_the_reserve_is_refused_and_a_node_group_may_not_take_the_name():
    values, secret = stack_values("single")
    values = copy.deepcopy(values)
    values["condor"] = {"enabled": True, "groups": {"control-plane": {"cpus": 30, "memoryGib": 64}}}
    with pytest.raises(ConfigError) as info:
        build_config(values, secret)
    (problem,) = info.value.problems
    assert problem.path == "af:condor.groups.control-plane"
    assert "the control plane's other roles (10.5 cores, 40 GiB)" in problem.allowed
    values["condor"] = {"enabled": True, "groups": {"control-plane": {"cpus": 20, "memoryGib": 64}}}
    assert build_config(values, secret).condor.groups["control-plane"].cpus == 20
    values = copy.deepcopy(stack_values("single")[0])
    values["cluster"]["nodeGroups"] = {"control-plane": {"flavor": "xlarge", "count": 1, "roles": ["batch"]}}
    with pytest.raises(ConfigError) as info:
        build_config(values, secret)
    assert "af:cluster.nodeGroups.control-plane" in {p.path for p in info.value.problems}
