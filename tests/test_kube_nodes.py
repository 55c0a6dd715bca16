"""The nodes a stack registers, as the Kubernetes tests build them from the plan (tests/support/kubeplan.py): one
per VM with the labels and taints the VM's metadata declares, its flavor's capacity and the GPUs the device
plugin advertises; Magnum's nodes with only the labels Magnum's driver gives. And what the scheduling check says
when a stack has no node for a role."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import preview_values
from support.kube import Kube
from support.kubeplan import Flavor, NodeSpec, preview, stack_nodes, workloads
from support.kubestack import on_cluster, run_workloads
from test_gpu import GPU_STACK, GROUP, VARIANTS

from afctl.plan import plan_document

K3S_CONFIG = "/etc/rancher/k3s/config.yaml"


def by_name(nodes: list[NodeSpec]) -> dict[str, NodeSpec]:
    return {n.name: n for n in nodes}


def k3s_config(files: dict[str, str], role: str) -> dict[str, Any]:
    doc = yaml.safe_load(files[f"cluster/cloud-init/{role}.yaml"])
    (config,) = [f["content"] for f in doc["write_files"] if f["path"] == K3S_CONFIG]
    return yaml.safe_load(config)


def test_openstack_nodes_are_the_vms_with_the_labels_and_taints_their_k3s_registers() -> None:
    stack = preview("cms-bari")
    nodes = by_name(stack_nodes(stack.plan, stack.files, stack.flavors))
    # control plane, system, cpu, cache, gpu-a100; and the Leonardo gateway's virtual node
    assert len(nodes) == 3 + 2 + 10 + 1 + 2 + 1
    leonardo = nodes.pop("af-vk-leonardo")
    assert leonardo.labels["af.infn.it/offload-gateway"] == "leonardo" and leonardo.gpus == 24
    assert leonardo.capacity | {"pods": "50"} == {
        "cpu": "256",
        "memory": "1024Gi",
        "pods": "50",
        "nvidia.com/gpu": "24",
    }
    for group in ("system", "cpu", "cache", "gpu-a100"):
        config = k3s_config(stack.files, group)  # the VM's own k3s config: an independent source
        node = nodes[f"af-cms-bari-{group}-0"]
        assert {f"{k}={v}" for k, v in node.labels.items()} >= set(config.get("node-label", []))
        assert sorted(
            f"{t['key']}{'=' + t['value'] if 'value' in t else ''}:{t['effect']}" for t in node.taints
        ) == sorted(config.get("node-taint", []))
    assert nodes["af-cms-bari-control-plane-0"].taints == [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    ]
    cpu, gpu = nodes["af-cms-bari-cpu-3"], nodes["af-cms-bari-gpu-a100-1"]
    assert cpu.capacity == {"cpu": "16", "memory": f"{32 * 1024 - 100}Mi", "pods": "110"}  # flavor 2xlarge
    assert gpu.capacity["cpu"] == "16" and gpu.gpus == 1  # g1-a100: one whole A100


@pytest.mark.parametrize(("variant", "gpus"), [("time-sliced", 4), ("mig", 7)])
def test_gpu_nodes_advertise_what_the_device_plugin_would(variant: str, gpus: int) -> None:
    """One A100 time-sliced 4 ways is 4 `nvidia.com/gpu`; split into 7 MIG instances, 7."""
    result = preview_values(GPU_STACK, *VARIANTS[variant])
    flavors = {"g1-a100": Flavor(16, 64, 1), "2xlarge": Flavor(16, 32), "xlarge": Flavor(8, 16), "large": Flavor(4, 8)}
    nodes = stack_nodes(plan_document(result), result.files, flavors)
    assert {n.gpus for n in nodes if n.group == GROUP} == {gpus}
    assert {n.gpus for n in nodes if n.group != GROUP and not n.name.startswith("af-vk-")} == {0}


def test_magnum_nodes_register_with_only_the_labels_magnums_driver_gives() -> None:
    """Magnum's nodes register with `magnum.openstack.org/role` and `.../nodegroup` only (the node groups' `labels`
    are driver settings): the facility's labels and taints are the node labeller's to add, once the cluster runs."""
    stack = preview("atlas-cnaf")
    nodes = stack_nodes(stack.plan, stack.files, stack.flavors)
    groups = {n.group: sum(m.group == n.group for m in nodes) for n in nodes}
    assert groups == {"default-master": 3, "default-worker": 8, "default": 3}
    for node in nodes:
        assert not [k for k in node.labels if k.startswith("af.infn.it/")], node.name
        assert node.labels["magnum.openstack.org/nodegroup"] == node.group
    masters = [n for n in nodes if n.group == "default-master"]
    assert all(n.taints == [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}] for n in masters)


def test_a_stack_without_a_node_for_a_role_fails_naming_the_workload_and_the_label(kube: Kube) -> None:
    """cms-bari with its system nodes stripped of the `system` role: the pool's central manager and schedd and
    the autoscaler have nowhere to go, and the check says which workload lacks which label."""
    stack = preview("cms-bari")
    nodes = stack_nodes(stack.plan, stack.files, stack.flavors)
    for node in nodes:
        node.labels.pop("af.infn.it/role-system", None)
    with on_cluster(kube, stack, nodes) as deployed:
        ours = [o.manifest for o in workloads(deployed.deployed.applied)]
        _, failures = run_workloads(kube, ours, nodes)
    missing = "no node has the label af.infn.it/role-system=true (nodeSelector)"
    system = [
        "Deployment condor/af-condor-cm",
        "StatefulSet condor/af-condor-schedd",
        "Deployment condor/af-autoscaler",
        "Deployment interlink/af-vk-leonardo",  # the gateway's virtual kubelet runs with the services
        "Job condor/af-condor-token-minter",  # and the Job minting its workers' token
    ]
    for workload in system:
        (failure,) = [f for f in failures if f.startswith(workload + ":")]
        assert missing in failure and "didn't match Pod's node affinity/selector" in failure, failure
    # The gateway's workers still find its virtual node: the node is interLink's, not the Deployment's pod.
    assert sorted(f.split(":")[0] for f in failures) == sorted(system)
