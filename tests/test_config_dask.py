"""Config of the Dask layer (af:dask): limits per declared IAM group, sizes that fit the nodes of
the workers' and schedulers' groups, and the clean error contract for everything else."""

from __future__ import annotations

from typing import Any

import pytest
from test_config import HUB_SECRET, edit, hub_base, only_problem, problems_of

from components.config.loader import build_config
from components.dask.config import worker_groups

LIMITS = {"cores": 16, "memoryGib": 64, "workersPerCluster": 8, "clustersPerUser": 2}


def dask_base() -> dict[str, Any]:
    """`hub_base()` with Dask on: workers on the CPU group (role dask), limits for /users."""
    cfg = edit(hub_base(), "dask", {"enabled": True, "limits": {"/users": dict(LIMITS)}})
    return edit(cfg, "cluster.nodeGroups.cpu.roles", ["system", "batch", "interactive", "dask"])


def test_dask_base_is_valid_with_documented_defaults() -> None:
    dask = build_config(dask_base(), HUB_SECRET).dask
    assert dask.enabled and dask.chart_version == "2026.3.0"
    assert dask.gateway_image == "ghcr.io/dask/dask-gateway-server:2026.3.0"
    assert (dask.placement.schedulers, dask.placement.workers) == ("interactive", "dask")
    assert dask.limits["/users"].clusters_per_user == 2


@pytest.mark.parametrize(
    ("path", "value", "reported", "allowed"),
    [
        ("dask.limits./users.cores", -4, "af:dask.limits./users.cores", "above 0"),
        ("dask.limits./users.workersPerCluster", 0, "af:dask.limits./users.workersPerCluster", "above 0"),
        ("dask.limits./users.clustersPerUser", -1, "af:dask.limits./users.clustersPerUser", "above 0"),
        ("dask.limits./users.gpus", 2, "af:dask.limits./users.gpus", "one of the keys clustersPerUser, cores"),
        ("dask.limits./nobody", dict(LIMITS), "af:dask.limits./nobody", "a group declared in af:identity.roles"),
        ("dask.limits", {}, "af:dask.limits", "limits for at least one IAM group"),
        ("dask.limits./users.memoryGib", 2, "af:dask.limits./users", "at least a scheduler and one default worker"),
        ("dask.worker.maxCores", 64, "af:dask.worker", "a pod that fits a node of cpu"),
        ("dask.worker.maxMemoryGib", 40, "af:dask.worker", "a pod that fits a node of cpu"),
        ("dask.worker.cores", 8, "af:dask.worker", "a default worker size within maxCores"),
        ("dask.scheduler", {"cores": 10, "memoryGib": 2}, "af:dask.scheduler", "a pod that fits a node of cpu"),
        ("dask.placement.workers", "cache", "af:dask.placement.workers", "add 'cache' to its roles"),
        ("dask.placement.schedulers", "gpu", "af:dask.placement.schedulers", "'system', 'interactive'"),
        ("dask.idleTimeoutMinutes", 0, "af:dask.idleTimeoutMinutes", "above 0"),
        ("dask.chartVersion", "latest", "af:dask.chartVersion", "a dask-gateway chart version"),
    ],
)
def test_bad_dask_config(path: str, value: Any, reported: str, allowed: str) -> None:
    problem = only_problem(edit(dask_base(), path, value), reported, allowed, HUB_SECRET)
    assert problem.line().startswith(f"{reported}: got ")


def test_gpu_only_worker_groups_leave_cpu_workers_nowhere() -> None:
    cfg = edit(dask_base(), "cluster.nodeGroups.cpu.roles", ["system", "batch", "interactive"])
    cfg = edit(cfg, "cluster.nodeGroups.gpu.roles", ["batch", "dask"])
    only_problem(cfg, "af:dask.placement.workers", "a role of a CPU node group", HUB_SECRET)


def test_workers_may_run_on_the_control_plane_when_it_has_their_role() -> None:
    cfg = edit(dask_base(), "cluster.nodeGroups.cpu.roles", ["system", "batch", "interactive"])
    only_problem(cfg, "af:dask.placement.workers", "or of af:cluster.controlPlane.roles", HUB_SECRET)
    on_control_plane = edit(edit(cfg, "cluster.controlPlane.roles", ["dask"]), "cluster.controlPlane.flavor", "big")
    assert list(worker_groups(build_config(on_control_plane, HUB_SECRET), gpu=False)) == ["control-plane"]
    # Its flavor (big: 8 vCPUs) bounds the workers as a node group's would.
    too_big = edit(on_control_plane, "dask.worker.maxCores", 8)
    only_problem(too_big, "af:dask.worker", "a pod that fits a node of control-plane", HUB_SECRET)


def test_the_gateway_needs_the_hub() -> None:
    found = problems_of(edit(dask_base(), "hub.enabled", False), HUB_SECRET)
    assert [p.path for p in found] == ["af:dask.enabled"] and "af:hub.enabled" in found[0].allowed


def test_a_disabled_gateway_is_not_checked() -> None:
    cfg = edit(dask_base(), "dask.enabled", False)
    cfg = edit(cfg, "dask.limits./nobody", dict(LIMITS))
    assert not build_config(cfg, HUB_SECRET).dask.enabled


def test_node_sizes_are_unknown_in_mode_existing() -> None:
    cfg = edit(dask_base(), "dask.worker.maxCores", 64)
    cfg = edit(cfg, "cluster.mode", "existing")
    cfg = edit(cfg, "cluster.existing", {"kubeconfig": "apiVersion: v1"})
    assert build_config(cfg, HUB_SECRET | {"cluster"}).dask.worker.max_cores == 64
