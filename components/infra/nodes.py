"""Groups of identical VMs (the control plane and each worker node group), and the labels their
nodes register with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pulumi
import pulumi_openstack as openstack

from ..names import (
    DEVICE_PLUGIN_CONFIG_LABEL,
    GPU_COUNT_LABEL,
    GPU_MODEL_LABEL,
    GPU_PRESENT_LABEL,
    group_nodes,
    role_nodes,
)
from .config import NodeGroup

ROLE_METADATA = "af-role"
"""Instance metadata naming the VM's role: `control-plane` or its node group."""
TAINTS_METADATA = "af-node-taints"
"""Instance metadata listing the taints the node registers with, comma-separated."""
LABEL_METADATA_PREFIX = "af-node-label:"
"""Instance metadata `af-node-label:<key>` = `<value>`: one entry per label the node registers
with (one entry each: Nova caps a metadata value at 255 characters)."""


def node_labels(group_name: str, group: NodeGroup) -> dict[str, str]:
    """Labels later layers select on: the group, its roles and its GPUs."""
    labels = group_nodes(group_name)
    for role in group.roles:
        labels.update(role_nodes(role))
    if group.gpu:
        labels.update({GPU_PRESENT_LABEL: "true", GPU_MODEL_LABEL: group.gpu.model})
        labels[GPU_COUNT_LABEL] = str(group.gpu.count)
        # The device plugin's config manager picks the group's entry (time-slicing, MIG) by it.
        labels[DEVICE_PLUGIN_CONFIG_LABEL] = group_name
    labels.update(group.labels)
    return labels


@dataclass(frozen=True)
class VmSpec:
    """What every VM of a pool shares."""

    role: str
    flavor: str
    image: str
    count: int
    key_pair: pulumi.Input[str]
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_ids: list[pulumi.Input[str]]
    server_group_policy: str
    availability_zone: str | None = None
    fixed_ips: list[str] = field(default_factory=list)
    """One per VM when the pool needs stable addresses (control plane)."""
    volume_gib: int = 0
    volume_type: str | None = None
    keep_bootstrap: bool = False
    """Ignore later user-data changes: replacing a control-plane VM loses its etcd member."""
    taints: list[str] = field(default_factory=list)
    """Taints the node registers with (`key=value:Effect`), declared in the VM's metadata too:
    the user-data that applies them is a secret, the policy pack and operators read them here."""
    labels: dict[str, str] = field(default_factory=dict)
    """Labels the node registers with, declared in the VM's metadata for the same reason."""


class NodePool(pulumi.ComponentResource):
    """`count` VMs with a port each, spread by a server group, optionally a data volume each."""

    instances: list[openstack.compute.Instance]
    ports: list[openstack.networking.Port]
    server_group: openstack.compute.ServerGroup

    def __init__(
        self,
        name: str,
        spec: VmSpec,
        prefix: str,
        user_data: Callable[[int], pulumi.Input[str]],
        provider: openstack.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("af:infra:NodePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.server_group = openstack.compute.ServerGroup(
            f"{name}-spread", name=f"{prefix}-{spec.role}", policies=spec.server_group_policy, opts=child
        )
        self.instances, self.ports = [], []
        for index in range(spec.count):
            vm = f"{name}-{index}"
            fixed = [
                openstack.networking.PortFixedIpArgs(
                    subnet_id=spec.subnet_id, ip_address=spec.fixed_ips[index] if spec.fixed_ips else None
                )
            ]
            port = openstack.networking.Port(
                f"{vm}-port",
                name=f"{prefix}-{spec.role}-{index}",
                network_id=spec.network_id,
                fixed_ips=fixed,
                security_group_ids=spec.security_group_ids,
                admin_state_up=True,
                opts=child,
            )
            instance = openstack.compute.Instance(
                vm,
                name=f"{prefix}-{spec.role}-{index}",
                flavor_name=spec.flavor,
                image_name=spec.image,
                key_pair=spec.key_pair,
                availability_zone=spec.availability_zone,
                networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
                scheduler_hints=[openstack.compute.InstanceSchedulerHintArgs(group=self.server_group.id)],
                user_data=user_data(index),
                metadata={
                    ROLE_METADATA: spec.role,
                    "af-index": str(index),
                    **({TAINTS_METADATA: ",".join(spec.taints)} if spec.taints else {}),
                    **{f"{LABEL_METADATA_PREFIX}{k}": v for k, v in sorted(spec.labels.items())},
                },
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(ignore_changes=["userData"] if spec.keep_bootstrap else None)
                ),
            )
            if spec.volume_gib:
                volume = openstack.blockstorage.Volume(
                    f"{vm}-data",
                    name=f"{prefix}-{spec.role}-{index}-data",
                    size=spec.volume_gib,
                    volume_type=spec.volume_type,
                    availability_zone=spec.availability_zone,
                    opts=child,
                )
                openstack.compute.VolumeAttach(
                    f"{vm}-data-attach", instance_id=instance.id, volume_id=volume.id, opts=child
                )
            self.instances.append(instance)
            self.ports.append(port)
        self.register_outputs({"instanceIds": [i.id for i in self.instances]})
