"""Mode `magnum`: a cluster made by OpenStack Magnum, its template and one Magnum node group per
facility node group beyond the first (the first is the cluster's default group)."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from .config import Cluster, Site
from .kubeconfig import ClusterAccess
from .network import Network


def magnum_cluster(
    parent: pulumi.Resource,
    name: str,
    site: Site,
    cluster: Cluster,
    prefix: str,
    provider: openstack.Provider,
    network: Network | None,
    key_pair: openstack.compute.Keypair,
) -> ClusterAccess:
    child = pulumi.ResourceOptions(parent=parent, provider=provider)
    groups = sorted(cluster.node_groups.items())
    _, default = groups[0]
    template = openstack.containerinfra.ClusterTemplate(
        f"{name}-template",
        name=f"{prefix}-template",
        coe="kubernetes",
        image=cluster.magnum.image or site.image,
        external_network_id=site.external_network,
        master_flavor=cluster.control_plane.flavor,
        flavor=default.flavor,
        docker_volume_size=cluster.magnum.docker_volume_gib,
        network_driver=cluster.magnum.network_driver,
        master_lb_enabled=cluster.control_plane.count > 1,
        floating_ip_enabled=False,
        labels={"kube_tag": cluster.magnum.kube_tag, "availability_zone": site.availability_zone or ""},
        opts=child,
    )
    magnum = openstack.containerinfra.Cluster(
        f"{name}-magnum",
        name=prefix,
        cluster_template_id=template.id,
        master_count=cluster.control_plane.count,
        node_count=default.count,
        flavor=default.flavor,
        keypair=key_pair.name,
        fixed_network=network.network_id if network else None,
        fixed_subnet=network.subnet_id if network else None,
        # Driver settings only: the node labeller gives the nodes the facility's labels.
        labels={"kube_tag": cluster.magnum.kube_tag},
        merge_labels=True,
        opts=child,
    )
    for group_name, group in groups[1:]:
        openstack.containerinfra.NodeGroup(
            f"{name}-{group_name}",
            name=group_name,
            cluster_id=magnum.id,
            node_count=group.count,
            flavor_id=group.flavor,
            role=group_name,
            merge_labels=True,
            opts=child,
        )
    return ClusterAccess(
        api_endpoint=magnum.api_address,
        ingress_address=magnum.api_address.apply(lambda a: a.split("//")[-1].split(":")[0]),
        kubeconfig=pulumi.Output.secret(magnum.kubeconfig.apply(lambda k: (k or {}).get("raw_config", ""))),
        ready=[magnum],
    )
