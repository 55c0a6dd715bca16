"""Config of the batch layer (af:condor): worker groups from the batch node groups, their sizes
and bounds, START expressions checked by classad2, all as clean errors."""

from __future__ import annotations

from typing import Any

import classad2
import pytest
from test_config import DELETE, base, edit, only_problem, problems_of

from components.batch.config import DAEMON_MEMORY_MIB, GPU_START, Condor, worker_groups
from components.config.loader import build_config


def condor_base() -> dict[str, Any]:
    """`test_config.base()` with the pool on: batch groups `cpu` (big: 8 vCPUs, 32 GiB, 2
    nodes) and `gpu` (16 vCPUs, 64 GiB, 2 GPUs, 1 node), and a batch role."""
    cfg = edit(base(), "condor", {"enabled": True})
    return edit(cfg, "identity.roles", {"batch": ["/users"]})


def groups(cfg: dict[str, Any]):
    built = build_config(cfg)
    return worker_groups(built.condor, built.cluster, built.site.flavors)


def test_defaults_and_worker_groups_from_the_batch_node_groups() -> None:
    condor = build_config(condor_base()).condor
    assert (condor.image_tag, condor.idle_shutdown_minutes, condor.retire_grace_minutes) == ("24.0.7-el9", 20, 60)
    assert (condor.spool_gib, condor.negotiator_interval_seconds, condor.groups) == (50, 20, {})
    assert condor.image("execute") == "docker.io/htcondor/execute:24.0.7-el9"
    assert condor.image("cm") == "docker.io/htcondor/cm:24.0.7-el9"
    found = groups(condor_base())
    assert list(found) == ["cpu", "gpu"]
    cpu, gpu = found["cpu"], found["gpu"]
    # Sized to the node by the hub's fit rule (vCPUs less half a core, 90% of the RAM), less the
    # room of the services the group also runs (role system: 2.5 cores, 8 GiB).
    assert cpu.node_group is not None and "system" in cpu.node_group.roles
    assert (cpu.pod_cpus, cpu.pod_memory_mib, cpu.slot_cpus) == (5.0, int((32 * 0.9 - 8) * 1024), 5)
    services_apart = edit(condor_base(), "cluster.nodeGroups.gpu.roles", ["system", "batch"])
    batch_only = groups(edit(services_apart, "cluster.nodeGroups.cpu.roles", ["batch", "interactive", "dask"]))["cpu"]
    assert (batch_only.pod_cpus, batch_only.pod_memory_mib) == (7.5, int(32 * 0.9 * 1024))
    assert cpu.slot_memory_mib == cpu.pod_memory_mib - DAEMON_MEMORY_MIB
    assert (cpu.gpus, cpu.start, cpu.preference, cpu.min_workers, cpu.max_workers) == (0, "True", 0, 0, 2)
    assert (gpu.gpus, gpu.preference, gpu.max_workers) == (2, 10, 1)
    # 15.5 cores and 57.6 GiB: a slot of 15 cores and 57,958 MiB, 7.5 cores and 28,979 MiB per GPU.
    assert (gpu.slot_cpus, gpu.slot_memory_mib) == (15, 57958)
    assert admits(gpu.start, free=(15, 57958, 2), job=(1, 2000, 0)) is False  # both GPUs free: all kept
    assert admits(gpu.start, free=(15, 57958, 2), job=(4, 16000, 1)) is True
    assert admits(gpu.start, free=(11, 41958, 1), job=(3, 12979, 0)) is True  # one GPU taken: its share is free
    assert admits(gpu.start, free=(11, 41958, 1), job=(4, 12979, 0)) is False
    assert admits(gpu.start, free=(11, 41958, 1), job=(3, 12980, 0)) is False
    assert admits(gpu.start, free=(3, 9000, 0), job=(3, 9000, 0)) is True  # every GPU taken: the rest is free
    # Node groups without the batch role are not worker groups.
    only_cpu = edit(condor_base(), "cluster.nodeGroups.gpu.roles", ["interactive"])
    assert list(groups(only_cpu)) == ["cpu"]


def admits(start: str, free: tuple[int, int, int], job: tuple[int, int, int]) -> bool | None:
    """The START on a partitionable slot whose unclaimed cores, memory and GPUs are `free`, for a
    job requesting `job` (condor_submit leaves RequestGPUs out of a job that asks for none)."""
    slot = classad2.ClassAd({"Cpus": free[0], "Memory": free[1], "GPUs": free[2]})
    request = classad2.ClassAd({"RequestCpus": job[0], "RequestMemory": job[1]})
    if job[2]:
        request["RequestGpus"] = job[2]
    value = classad2.ExprTree(start).eval(slot, request)
    return value if isinstance(value, bool) else None


def test_gpu_groups_keep_a_reserve_for_gpu_jobs_and_lend_the_rest() -> None:
    reserve = {"cpus": 4, "memoryGib": 16}
    gpu = groups(edit(condor_base(), "condor.groups", {"gpu": {"gpuReserve": reserve}}))["gpu"]
    assert admits(gpu.start, free=(15, 57958, 2), job=(7, 25190, 0)) is True  # 8 cores and 32 GiB kept
    assert admits(gpu.start, free=(15, 57958, 2), job=(8, 1000, 0)) is False
    assert admits(gpu.start, free=(15, 57958, 2), job=(7, 25191, 0)) is False
    # A dynamic slot carved for a CPU job has no GPU: the startd's check of its START passes.
    assert admits(gpu.start, free=(7, 25190, 0), job=(7, 25190, 0)) is True
    # Own START: no default to keep a reserve in; a reserve on a CPU group means nothing.
    own = {"gpu": {"gpuReserve": reserve, "start": GPU_START}}
    assert [p.path for p in problems_of(edit(condor_base(), "condor.groups", own), {"condor"})] == [
        "af:condor.groups.gpu.gpuReserve"
    ]
    cpu = {"cpu": {"gpuReserve": reserve}}
    assert [p.path for p in problems_of(edit(condor_base(), "condor.groups", cpu), {"condor"})] == [
        "af:condor.groups.cpu.gpuReserve"
    ]


def test_group_settings_override_the_defaults() -> None:
    settings = {"minWorkers": 1, "maxWorkers": 1, "start": 'Owner == "alice"', "preference": 3, "cpus": 4}
    cfg = edit(condor_base(), "condor.groups", {"cpu": {**settings, "memoryGib": 16}})
    cpu = groups(cfg)["cpu"]
    assert (cpu.min_workers, cpu.max_workers, cpu.start, cpu.preference) == (1, 1, 'Owner == "alice"', 3)
    assert (cpu.pod_cpus, cpu.pod_memory_mib, cpu.slot_cpus) == (4, 16384, 4)
    images = {"execute": "registry.example.org/cms/htcondor-execute:24.0.7-cms1"}
    assert Condor.model_validate({"images": images}).image("execute") == images["execute"]


def test_existing_clusters_need_declared_worker_sizes() -> None:
    cfg = edit(condor_base(), "cluster.mode", "existing")
    cfg = edit(cfg, "cluster.existing", {"kubeconfig": "apiVersion: v1"})
    found = problems_of(cfg, {"cluster"})
    assert {p.path for p in found} == {
        f"af:condor.groups.{name}.{key}" for name in ("cpu", "gpu") for key in ("cpus", "memoryGib")
    }
    assert all("unknown in cluster mode existing" in p.allowed for p in found)
    sized = {name: {"cpus": 8, "memoryGib": 30} for name in ("cpu", "gpu")}
    built = build_config(edit(cfg, "condor.groups", sized), {"cluster"})
    assert worker_groups(built.condor, built.cluster, built.site.flavors)["gpu"].pod_cpus == 8


@pytest.mark.parametrize(
    ("path", "value", "reported", "allowed"),
    [
        ("condor.groups.cpu.start", "RequestGpus >", "af:condor.groups.cpu.start", "a ClassAd expression"),
        ("condor.groups.cpu.start", "(Owner == ", "af:condor.groups.cpu.start", "classad2 cannot parse"),
        ("condor.groups.cpu.minWorkers", 2, None, None),  # equal to maxWorkers (2 nodes): fine
        ("condor.groups.cpu.minWorkers", 3, "af:condor.groups.cpu.minWorkers", "at most maxWorkers (2)"),
        ("condor.groups.cpu", {"minWorkers": 2, "maxWorkers": 1}, "af:condor.groups.cpu.minWorkers", "(1)"),
        ("condor.groups.cpu.maxWorkers", 5, "af:condor.groups.cpu.maxWorkers", "at most 2, one worker per node"),
        ("condor.groups.cpu.minWorkers", -1, "af:condor.groups.cpu.minWorkers", "a number of at least 0"),
        (
            "condor.groups.cache",
            {"minWorkers": 1},
            "af:condor.groups.cache",
            "a batch node group or offload gateway (cpu, gpu)",
        ),
        ("condor.groups.Cpu", {}, "af:condor.groups.Cpu", "a DNS label"),
        ("condor.groups.cpu.cpus", 8, "af:condor.groups.cpu", "a worker that fits a node of flavor 8 vCPUs"),
        ("condor.groups.cpu.memoryGib", 30, "af:condor.groups.cpu", "90% of its RAM"),
        ("condor.groups.cpu.cpus", 0.5, "af:condor.groups.cpu.cpus", "a number of at least 1"),
        ("condor.groups.cpu.preference", -2, "af:condor.groups.cpu.preference", "a number of at least 0"),
        ("condor.groups.cpu.colour", "red", "af:condor.groups.cpu.colour", "keys cpus, gpuReserve, maxWorkers"),
        ("condor.images.execute", "htcondor/execute:latest", "af:condor.images.execute", "never `latest`"),
        ("condor.images.cm", "htcondor/cm", "af:condor.images.cm", "pinned by tag"),
        ("condor.imageTag", "24.0.7", "af:condor.imageTag", "such as"),
        ("condor.retireGraceMinutes", 0, "af:condor.retireGraceMinutes", "a number of at least 1"),
        ("condor.negotiatorIntervalSeconds", 5, "af:condor.negotiatorIntervalSeconds", "a number of at least"),
        ("condor.audiences", [], "af:condor.audiences", "at least 1 item"),
        ("condor.spoolGib", 0, "af:condor.spoolGib", "a number above 0"),
        ("identity.roles.batch", [], "af:identity.roles.batch", "only its members may submit to HTCondor"),
        ("identity", DELETE, "af:identity", "an identity provider: condor needs OIDC login"),
    ],
)
def test_bad_condor_config(path: str, value: Any, reported: str | None, allowed: str | None) -> None:
    cfg = edit(condor_base(), path, value)
    if reported is None:
        assert build_config(cfg).condor.enabled
        return
    only_problem(cfg, reported, allowed)


def test_a_batch_flavor_must_leave_room_for_a_worker() -> None:
    cfg = edit(condor_base(), "site.flavors.tiny", {"vcpus": 1, "ramGib": 2})
    cfg = edit(cfg, "cluster.nodeGroups.cpu.flavor", "tiny")
    only_problem(cfg, "af:cluster.nodeGroups.cpu.flavor", "next to the group's roles system (2.5 cores, 8 GiB)")
    cfg = edit(edit(cfg, "cluster.nodeGroups.cpu.roles", ["batch"]), "cluster.nodeGroups.gpu.roles", ["system"])
    only_problem(cfg, "af:cluster.nodeGroups.cpu.flavor", "at least 1 core and 2 GiB next to the system pods")


def test_a_pool_needs_a_batch_node_group() -> None:
    cfg = edit(condor_base(), "cluster.nodeGroups.cpu.roles", ["system", "interactive"])
    cfg = edit(cfg, "cluster.nodeGroups.gpu.roles", ["interactive"])
    only_problem(cfg, "af:cluster.nodeGroups", "at least one node group with role batch")


def test_a_disabled_pool_is_not_cross_checked() -> None:
    cfg = edit(edit(condor_base(), "condor.enabled", False), "condor.groups", {"nowhere": {"minWorkers": 9}})
    cfg = edit(cfg, "identity.roles.batch", [])
    assert not build_config(cfg).condor.enabled


def test_every_problem_of_a_group_is_reported_together() -> None:
    cfg = edit(condor_base(), "condor.groups", {"cpu": {"minWorkers": 4, "maxWorkers": 3}, "gpu": {"cpus": 32}})
    found = {p.path: p.allowed for p in problems_of(cfg)}
    assert found == {
        "af:condor.groups.cpu.minWorkers": "at most maxWorkers (3)",
        "af:condor.groups.cpu.maxWorkers": "at most 2, one worker per node of node group cpu",
        "af:condor.groups.gpu": found["af:condor.groups.gpu"],
    }
    assert "16 vCPUs, 64 GiB" in found["af:condor.groups.gpu"]
