"""The VMs' metadata declares the taints their (secret) user-data makes k3s register with."""

from __future__ import annotations

import pytest
import yaml
from conftest import SHIPPED_STACKS, of_type

from components.infra.nodes import ROLE_METADATA, TAINTS_METADATA

INSTANCE = "openstack:compute/instance:Instance"
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"


def _rendered_taints(text: str) -> list[str]:
    doc = yaml.safe_load(text)
    (config,) = [f["content"] for f in doc["write_files"] if f["path"] == K3S_CONFIG]
    return yaml.safe_load(config).get("node-taint", [])


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_instance_metadata_lists_the_taints_of_its_user_data(shipped, stack):
    result = shipped(stack)
    instances = {r.name: r.inputs["metadata"] for r in of_type(result, INSTANCE)}
    files = {k.removeprefix("cluster/cloud-init/"): v for k, v in result.files.items() if "cloud-init/" in k}
    checked = 0
    for name, metadata in instances.items():
        role, index = metadata[ROLE_METADATA], metadata["af-index"]
        filename = f"{role}-{index}.yaml" if role == "control-plane" else f"{role}.yaml"
        if filename not in files:
            continue  # one rendered file per role (and the two control-plane variants)
        taints = _rendered_taints(files[filename])
        assert metadata.get(TAINTS_METADATA, "").split(",") == (taints or [""]), name
        checked += 1
    assert checked or not instances


def test_gpu_and_control_plane_nodes_declare_their_taints(shipped):
    metadata = {r.name: r.inputs["metadata"] for r in of_type(shipped("cms-bari"), INSTANCE)}
    assert metadata["af-cluster-gpu-a100-1"][TAINTS_METADATA] == "nvidia.com/gpu=present:NoSchedule"
    assert metadata["af-cluster-control-plane-2"][TAINTS_METADATA] == "node-role.kubernetes.io/control-plane:NoSchedule"
    assert TAINTS_METADATA not in metadata["af-cluster-cpu-0"]
