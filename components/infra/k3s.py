"""Mode `openstack`: k3s on the facility's VMs, bootstrapped by cloud-init. The program
generates the cluster's CAs and admin credential, so the kubeconfig is known without logging
into a VM; a readiness gate holds every later layer until the API answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from ..common import rendered
from ..names import CONTROL_PLANE_GROUP, CONTROL_PLANE_TAINT, group_nodes, role_nodes
from .cloudinit import CaPair, NodeBootstrap, join_token, render_user_data
from .config import Cluster, NodeGroup, Site
from .kubeconfig import ClusterAccess, render_kubeconfig
from .network import API_PORT, Network, control_plane_ips
from .nodes import NodePool, VmSpec, node_labels
from .pki import ClusterPki
from .readiness import ApiReady


def _user_data(
    component: str,
    filename: str | None,
    values: pulumi.Output[list[str]],
    build: Callable[[list[str]], NodeBootstrap],
) -> pulumi.Output[str]:
    """Secret user-data for the VM; a redacted copy published for the preview when named.
    `values` is resolved once and shared by many VMs: each extra Output per VM costs the SDK
    time that grows with the number of outstanding Outputs."""
    if filename:
        preview = values.apply(lambda v: render_user_data(build(v).redacted()))
        rendered.publish(component, filename, pulumi.Output.unsecret(preview))
    return pulumi.Output.secret(values.apply(lambda v: render_user_data(build(v))))


@dataclass(frozen=True)
class _Shared:
    """What every VM of the cluster is given."""

    parent: pulumi.Resource
    name: str
    prefix: str
    site: Site
    cluster: Cluster
    provider: openstack.Provider
    network: Network
    key_pair: openstack.compute.Keypair
    server_url: str

    def vm(self, role: str, flavor: str, image: str, count: int, security_groups: list, **more) -> VmSpec:
        return VmSpec(
            role=role,
            flavor=flavor,
            image=image,
            count=count,
            key_pair=self.key_pair.name,
            network_id=self.network.network_id,
            subnet_id=self.network.subnet_id,
            security_group_ids=security_groups,
            availability_zone=self.site.availability_zone,
            **more,
        )

    def pool(self, pool_name: str, spec: VmSpec, user_data: Callable[[int], pulumi.Output[str]]) -> NodePool:
        return NodePool(
            f"{self.name}-{pool_name}",
            spec,
            self.prefix,
            user_data,
            self.provider,
            opts=pulumi.ResourceOptions(parent=self.parent),
        )


def _control_plane(
    shared: _Shared,
    pki: ClusterPki,
    token: pulumi.Output[list[str]],
    fip: openstack.networking.FloatingIp,
    cp_ips: list[str],
) -> NodePool:
    """The servers: the first initialises the cluster with the generated CAs, the others join."""
    site, cluster = shared.site, shared.cluster
    ca_names = sorted(pki.ca_certs)
    labels, taints = control_plane_placement(cluster)
    values = pulumi.Output.all(
        fip.address,
        token,
        pki.service_account_key,
        *(pki.ca_certs[c] for c in ca_names),
        *(pki.ca_keys[c] for c in ca_names),
    )

    def server(index: int) -> pulumi.Output[str]:
        def build(v: list[str]) -> NodeBootstrap:
            address, (join,), sa_key = v[0], v[1], v[2]
            certs = dict(zip(ca_names, v[3 : 3 + len(ca_names)], strict=True))
            keys = dict(zip(ca_names, v[3 + len(ca_names) :], strict=True))
            first = index == 0
            return NodeBootstrap(
                node_name=f"{shared.prefix}-control-plane-{index}",
                k3s=cluster.k3s,
                server_url=shared.server_url,
                token=join,
                labels=labels,
                taints=taints,
                ssh_public_keys=list(site.ssh_public_keys),
                server=True,
                cluster_init=first,
                node_ip=cp_ips[index],
                tls_sans=[address, site.dns_name, *cp_ips],
                pod_cidr=cluster.pod_cidr,
                service_cidr=cluster.service_cidr,
                cas={c: CaPair(certs[c], keys[c]) for c in ca_names} if first else {},
                service_account_key=sa_key if first else "",
            )

        # One file per control-plane node: each has its own name and address (the first
        # initialises the cluster, the others join it).
        filename = f"cloud-init/control-plane-{index}.yaml"
        return _user_data("cluster", filename, values, build)

    network = shared.network
    spec = shared.vm(
        "control-plane",
        cluster.control_plane.flavor,
        site.image,
        cluster.control_plane.count,
        [network.nodes_group.id, network.admin_group.id, network.public_group.id],
        server_group_policy="anti-affinity",
        fixed_ips=cp_ips,
        keep_bootstrap=True,
        taints=taints,
        labels=labels,
    )
    return shared.pool("control-plane", spec, server)


def control_plane_placement(cluster: Cluster) -> tuple[dict[str, str], list[str]]:
    """The control plane's node labels and taints: tainted when it hosts nothing of the
    facility, labelled with its roles (and untainted) when it does."""
    if not cluster.control_plane.roles:
        return {}, [CONTROL_PLANE_TAINT]
    # Named like a node group's nodes, so a worker group on the control plane selects them.
    labels: dict[str, str] = group_nodes(CONTROL_PLANE_GROUP)
    for role in cluster.control_plane.roles:
        labels.update(role_nodes(role))
    return labels, []


def _agents(shared: _Shared, token: pulumi.Output[list[str]], group_name: str, group: NodeGroup) -> NodePool:
    """One node group's agents, registering with the group's labels and taints."""
    labels = node_labels(group_name, group)
    taints = [t.render() for t in group.taints]

    def agent(index: int) -> pulumi.Output[str]:
        def build(v: list[str]) -> NodeBootstrap:
            return NodeBootstrap(
                node_name=f"{shared.prefix}-{group_name}-{index}",
                k3s=shared.cluster.k3s,
                server_url=shared.server_url,
                token=v[0],
                labels=labels,
                taints=taints,
                data_volume=group.volume_gib > 0,
                ssh_public_keys=list(shared.site.ssh_public_keys),
                gpu=group.gpu,
            )

        filename = f"cloud-init/{group_name}.yaml" if index == 0 else None
        return _user_data("cluster", filename, token, build)

    spec = shared.vm(
        group_name,
        group.flavor,
        group.image or shared.site.image,
        group.count,
        # No floating IP reaches workers; ingress arrives through the control plane's.
        [shared.network.nodes_group.id],
        server_group_policy="soft-anti-affinity",
        volume_gib=group.volume_gib,
        volume_type=group.volume_type,
        taints=taints,
        labels=labels,
    )
    return shared.pool(group_name, spec, agent)


def k3s_cluster(
    parent: pulumi.Resource,
    name: str,
    site: Site,
    cluster: Cluster,
    prefix: str,
    provider: openstack.Provider,
    network: Network,
    key_pair: openstack.compute.Keypair,
) -> ClusterAccess:
    """The control plane behind the floating IP, every node group's agents, the kubeconfig and
    the gate that opens once the API answers; every resource is a child of `parent`."""
    pki = ClusterPki(f"{name}-pki", opts=pulumi.ResourceOptions(parent=parent))
    fip = openstack.networking.FloatingIp(
        f"{name}-api-fip",
        pool=site.external_network,
        description=f"{prefix} api and ingress",
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )
    cp_ips = control_plane_ips(site.node_cidr, cluster.control_plane.count)
    shared = _Shared(
        parent, name, prefix, site, cluster, provider, network, key_pair, f"https://{cp_ips[0]}:{API_PORT}"
    )
    token = pulumi.Output.all(pki.ca_certs["server-ca"], pki.join_password).apply(lambda v: [join_token(*v)])
    control_plane = _control_plane(shared, pki, token, fip, cp_ips)
    association = openstack.networking.FloatingIpAssociate(
        f"{name}-api-fip-assoc",
        floating_ip=fip.address,
        port_id=control_plane.ports[0].id,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )
    for group_name, group in sorted(cluster.node_groups.items()):
        _agents(shared, token, group_name, group)

    api_endpoint = fip.address.apply(lambda a: f"https://{a}:{API_PORT}")
    kubeconfig = pulumi.Output.secret(
        pulumi.Output.all(api_endpoint, pki.ca_certs["server-ca"], pki.admin_cert, pki.admin_key).apply(
            lambda v: render_kubeconfig(prefix, v[0], v[1], v[2], v[3])
        )
    )
    ready = ApiReady(
        f"{name}-api-ready",
        api_endpoint,
        pki.ca_certs["server-ca"],
        pki.admin_cert,
        pki.admin_key,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[association, *control_plane.instances]),
    )
    return ClusterAccess(api_endpoint, fip.address, kubeconfig, [association, *control_plane.instances, ready])
