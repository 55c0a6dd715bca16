"""Config of GPU node groups (af:cluster.nodeGroups.*.gpu) and of the device plugin (af:gpu):
good cases, the schedulable GPUs every layer counts, and each invalid declaration as one clean
problem line at its key path."""

from __future__ import annotations

from typing import Any

import pytest
from test_config import DELETE, HUB_SECRET, base, edit, hub_base, only_problem, problems_of

from components.batch.config import worker_groups
from components.config.loader import build_config
from components.gpu.config import deploys_device_plugin, gpu_groups
from components.infra.config import GpuSpec

GPU = "cluster.nodeGroups.gpu.gpu"
"""The GPU spec of `test_config.base()`'s group `gpu`: flavor `gpu` with 2 A100s, role batch."""


def spec(**fields: Any) -> GpuSpec:
    return GpuSpec.model_validate({"count": 2, "model": "a100", **fields})


def notebooks(cfg: dict[str, Any]) -> dict[str, Any]:
    """`hub_base()` with the GPU group also running notebooks."""
    return edit(cfg, "cluster.nodeGroups.gpu.roles", ["batch", "interactive"])


def test_defaults_install_a_pinned_driver_and_toolkit_and_give_whole_gpus() -> None:
    gpu = build_config(base()).cluster.node_groups["gpu"].gpu
    assert gpu is not None
    assert (gpu.driver, gpu.driver_branch, gpu.container_toolkit_version) == ("install", "580-server", "1.17.8-1")
    assert (gpu.time_slicing, gpu.mig, gpu.per_gpu, gpu.schedulable) == (None, None, 1, 2)
    assert build_config(base()).cluster.node_groups["cpu"].image is None


@pytest.mark.parametrize(
    ("sharing", "per_gpu"),
    [
        ({"timeSlicing": {"replicas": 4}}, 4),
        ({"timeSlicing": {"replicas": 64}}, 64),
        ({"mig": {"profile": "1g.10gb", "instances": 7}}, 7),
        ({"mig": {"profile": "3g.40gb", "instances": 2}}, 2),
        ({"mig": {"profile": "1g.10gb+me", "instances": 1}}, 1),
    ],
)
def test_schedulable_gpus_multiply_by_time_slicing_or_mig(sharing: dict[str, Any], per_gpu: int) -> None:
    gpu = spec(**sharing)
    assert (gpu.per_gpu, gpu.schedulable) == (per_gpu, 2 * per_gpu)
    cfg = edit(edit(base(), GPU, {"count": 2, "model": "a100", **sharing}), "condor.enabled", True)
    cfg = build_config(edit(cfg, "identity.roles.batch", ["/users"]))
    # HTCondor's GPU worker takes the whole node: every schedulable GPU.
    assert worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors)["gpu"].gpus == 2 * per_gpu


def test_a_group_may_boot_its_own_image() -> None:
    cfg = edit(edit(base(), "cluster.nodeGroups.gpu.image", "ubuntu-24.04-nvidia-580"), f"{GPU}.driver", "preinstalled")
    group = build_config(cfg).cluster.node_groups["gpu"]
    assert group.image == "ubuntu-24.04-nvidia-580" and group.gpu is not None and group.gpu.driver == "preinstalled"


@pytest.mark.parametrize(
    ("path", "value", "reported", "allowed"),
    [
        (f"{GPU}.driver", "auto", f"af:{GPU}.driver", "'install' or 'preinstalled'"),
        (f"{GPU}.driverBranch", "latest", f"af:{GPU}.driverBranch", "such as"),
        (f"{GPU}.driverBranch", "570-open", f"af:{GPU}.driverBranch", "such as"),
        (f"{GPU}.containerToolkitVersion", "1.17.8", f"af:{GPU}.containerToolkitVersion", "such as"),
        (f"{GPU}.timeSlicing", {"replicas": 1}, f"af:{GPU}.timeSlicing.replicas", "a number of at least 2"),
        (f"{GPU}.timeSlicing", {"replicas": 65}, f"af:{GPU}.timeSlicing.replicas", "a number of at most 64"),
        (f"{GPU}.timeSlicing", {}, f"af:{GPU}.timeSlicing.replicas", "this key is required"),
        (f"{GPU}.timeSlicing", {"replicas": 2, "rename": True}, f"af:{GPU}.timeSlicing.rename", "replicas"),
        (f"{GPU}.mig", {"profile": "10gb", "instances": 1}, f"af:{GPU}.mig.profile", "such as"),
        (f"{GPU}.mig", {"profile": "1g.10gb", "instances": 8}, f"af:{GPU}.mig.instances", "a number of at most"),
        (f"{GPU}.mig", {"profile": "1g.10gb", "instances": 0}, f"af:{GPU}.mig.instances", "a number of at least"),
        (f"{GPU}.mig", {"profile": "3g.40gb", "instances": 3}, f"af:{GPU}.mig", "7 compute slices"),
        (f"{GPU}.mig", {"profile": "4g.40gb", "instances": 2}, f"af:{GPU}.mig", "takes 8"),
        ("cluster.nodeGroups.gpu.image", 7, "af:cluster.nodeGroups.gpu.image", "text"),
        ("gpu.chartVersion", "0.17", "af:gpu.chartVersion", "such as"),
        ("gpu.image", "nvcr.io/nvidia/k8s-device-plugin:latest", "af:gpu.image", "never `latest`"),
        ("gpu.image", "nvcr.io/nvidia/k8s-device-plugin", "af:gpu.image", "pinned by tag"),
        ("gpu.devicePlugin", "maybe", "af:gpu.devicePlugin", "true or false"),
        ("gpu.operator", True, "af:gpu.operator", "chartVersion, devicePlugin, image"),
    ],
)
def test_bad_gpu_declarations(path: str, value: Any, reported: str, allowed: str) -> None:
    only_problem(edit(base(), path, value), reported, allowed)


def test_time_slicing_and_mig_together_is_one_clean_problem() -> None:
    both = {"count": 2, "model": "a100", "timeSlicing": {"replicas": 4}, "mig": {"profile": "1g.10gb", "instances": 7}}
    problem = only_problem(edit(base(), GPU, both), f"af:{GPU}", "timeSlicing or mig, not both")
    assert problem.value.startswith('{"count": 2, "mig": {"instances": 7')


def test_magnum_nodes_bring_their_driver_and_no_group_image() -> None:
    magnum = edit(base(), "cluster.mode", "magnum")
    only_problem(magnum, f"af:{GPU}.driver", "preinstalled in cluster mode magnum")
    ready = edit(magnum, f"{GPU}.driver", "preinstalled")
    assert build_config(ready).cluster.mode == "magnum"
    only_problem(
        edit(ready, "cluster.nodeGroups.cpu.image", "other"), "af:cluster.nodeGroups.cpu.image", "af:cluster.magnum"
    )
    # Mode openstack boots the group's image; an existing cluster's nodes are not the program's.
    assert build_config(edit(base(), "cluster.nodeGroups.cpu.image", "other"))
    existing = edit(edit(base(), "cluster.mode", "existing"), "cluster.existing", {"kubeconfig": "apiVersion: v1"})
    assert build_config(edit(existing, "cluster.nodeGroups.cpu.image", "other"), {"cluster"})


def test_gpu_profile_counts_schedulable_gpus() -> None:
    cfg = notebooks(hub_base())  # 2 A100s per node
    assert build_config(edit(cfg, "hub.gpuProfile.gpus", 2), HUB_SECRET)
    only_problem(edit(cfg, "hub.gpuProfile.gpus", 3), "af:hub.gpuProfile", "(2 schedulable GPUs;", HUB_SECRET)
    shared = edit(cfg, f"{GPU}.timeSlicing", {"replicas": 4})
    assert build_config(edit(shared, "hub.gpuProfile.gpus", 8), HUB_SECRET).hub.gpu_profile.gpus == 8
    only_problem(edit(shared, "hub.gpuProfile.gpus", 9), "af:hub.gpuProfile", "(8 schedulable GPUs;", HUB_SECRET)
    mig = edit(cfg, f"{GPU}.mig", {"profile": "2g.20gb", "instances": 3})
    assert build_config(edit(mig, "hub.gpuProfile.gpus", 6), HUB_SECRET)
    only_problem(edit(mig, "hub.gpuProfile.gpus", 7), "af:hub.gpuProfile", "(6 schedulable GPUs;", HUB_SECRET)


def test_gpu_profile_count_is_checked_on_existing_clusters_too() -> None:
    cfg = edit(edit(notebooks(hub_base()), "cluster.mode", "existing"), "cluster.existing", {"kubeconfig": "k"})
    secret = HUB_SECRET | {"cluster"}
    # Node sizes are unknown there, the declared GPUs are not.
    assert build_config(edit(cfg, "hub.gpuProfile", {"gpus": 2, "cpu": 64, "memoryGib": 512}), secret)
    only_problem(edit(cfg, "hub.gpuProfile.gpus", 3), "af:hub.gpuProfile", "GPU group gpu (2 schedulable", secret)


def test_a_declared_gpu_profile_needs_a_gpu_group_that_runs_notebooks() -> None:
    cfg = hub_base()  # its GPU group runs batch only
    assert build_config(cfg, HUB_SECRET), "the default shape, not declared, offers nothing and is fine"
    problem = only_problem(edit(cfg, "hub.gpuProfile", {"gpus": 1}), "af:hub.gpuProfile", "no GPU profile", HUB_SECRET)
    assert problem.value == '"1 GPUs, 8 cores, 32 GiB"'
    without_gpus = edit(edit(cfg, "cluster.nodeGroups.gpu", DELETE), "hub.gpuProfile", {"cpu": 4})
    only_problem(without_gpus, "af:hub.gpuProfile", "no node group has a gpu spec and role interactive", HUB_SECRET)
    assert build_config(edit(notebooks(cfg), "hub.gpuProfile", {"gpus": 1}), HUB_SECRET)
    assert build_config(edit(edit(cfg, "hub.gpuProfile", {"gpus": 1}), "hub.enabled", False), HUB_SECRET)


def test_device_plugin_is_deployed_where_gpu_groups_are() -> None:
    cfg = build_config(base())
    assert gpu_groups(cfg.cluster) == ["gpu"] and deploys_device_plugin(cfg.gpu, cfg.cluster)
    assert (cfg.gpu.chart_version, cfg.gpu.image) == ("0.17.1", "nvcr.io/nvidia/k8s-device-plugin:v0.17.1")
    existing = edit(edit(base(), "cluster.mode", "existing"), "cluster.existing", {"kubeconfig": "k"})
    cfg = build_config(existing, {"cluster"})
    assert not deploys_device_plugin(cfg.gpu, cfg.cluster), "an existing cluster brings its own by default"
    cfg = build_config(edit(existing, "gpu.devicePlugin", True), {"cluster"})
    assert deploys_device_plugin(cfg.gpu, cfg.cluster)
    cfg = build_config(edit(base(), "gpu.devicePlugin", False))
    assert not deploys_device_plugin(cfg.gpu, cfg.cluster)


def test_device_plugin_without_gpu_groups_is_a_problem() -> None:
    cpu_only = edit(base(), "cluster.nodeGroups", {"cpu": base()["cluster"]["nodeGroups"]["cpu"]})
    cpu_only = edit(cpu_only, "site.flavors", {k: v for k, v in base()["site"]["flavors"].items() if k != "gpu"})
    cfg = build_config(cpu_only)
    assert gpu_groups(cfg.cluster) == [] and not deploys_device_plugin(cfg.gpu, cfg.cluster)
    only_problem(edit(cpu_only, "gpu.devicePlugin", True), "af:gpu.devicePlugin", "a node group has a gpu spec")


def test_every_problem_of_a_bad_gpu_group_is_reported_at_once() -> None:
    cfg = edit(notebooks(hub_base()), "cluster.mode", "magnum")
    cfg = edit(cfg, "cluster.nodeGroups.gpu.taints", [])
    cfg = edit(cfg, "cluster.nodeGroups.gpu.image", "x")
    cfg = edit(cfg, "hub.gpuProfile.gpus", 4)
    paths = {p.path for p in problems_of(cfg, HUB_SECRET)}
    assert {
        f"af:{GPU}.driver",
        "af:cluster.nodeGroups.gpu.taints",
        "af:cluster.nodeGroups.gpu.image",
        "af:hub.gpuProfile",
    } <= paths
