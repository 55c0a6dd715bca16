"""The Kubernetes cluster, in one of three modes, and the provider every later layer uses."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack
import pulumi_tls as tls

from . import rendered
from .cloudinit import CaPair, NodeBootstrap, join_token, render_user_data
from .config import FacilityConfig, NodeGroup
from .config.cluster import NodeRole
from .kubeconfig import render_kubeconfig
from .network import API_PORT, Network, control_plane_ips
from .nodes import NodePool, VmSpec
from .pki import ClusterPki
from .readiness import ApiReady

LABEL_PREFIX = "af.infn.it"
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane:NoSchedule"
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"


def role_nodes(role: NodeRole) -> dict[str, str]:
    """The node selector of the nodes whose groups have `role` (a label `node_labels` sets)."""
    return {f"{LABEL_PREFIX}/role-{role}": "true"}


SYSTEM_NODES = role_nodes("system")
"""Where the facility's own services run."""


def node_labels(group_name: str, group: NodeGroup) -> dict[str, str]:
    """Labels later layers select on: the group, its roles and its GPUs."""
    labels = {f"{LABEL_PREFIX}/node-group": group_name}
    for role in group.roles:
        labels.update(role_nodes(role))
    if group.gpu:
        labels.update({"nvidia.com/gpu.present": "true", f"{LABEL_PREFIX}/gpu-model": group.gpu.model})
        labels[f"{LABEL_PREFIX}/gpu-count"] = str(group.gpu.count)
        # The device plugin's config manager picks the group's entry (time-slicing, MIG) by it.
        labels[DEVICE_PLUGIN_CONFIG_LABEL] = group_name
    labels.update(group.labels)
    return labels


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


class Cluster(pulumi.ComponentResource):
    """Kubernetes for the facility: k3s on VMs (`openstack`), Magnum (`magnum`), or a given
    kubeconfig (`existing`). `provider` is the kubernetes provider for every later layer."""

    kubeconfig: pulumi.Output[str]
    api_endpoint: pulumi.Output[str]
    ingress_address: pulumi.Output[str]
    ssh_private_key: pulumi.Output[str] | None
    provider: k8s.Provider

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        prefix: str,
        openstack_provider: openstack.Provider | None,
        network: Network | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("af:cluster:Cluster", name, None, opts)
        self.ssh_private_key = None
        mode = cfg.cluster.mode
        depends: list[pulumi.Resource] = []
        if mode == "existing":
            assert cfg.cluster.existing is not None  # enforced by the config checks
            self.kubeconfig = pulumi.Output.secret(cfg.cluster.existing.kubeconfig.get_secret_value())
            self.api_endpoint = pulumi.Output.from_input("(existing cluster)")
            self.ingress_address = pulumi.Output.from_input("(existing cluster)")
        else:
            assert openstack_provider is not None
            child = pulumi.ResourceOptions(parent=self, provider=openstack_provider)
            ssh_key = tls.PrivateKey(f"{name}-ssh", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self))
            key_pair = openstack.compute.Keypair(
                f"{name}-keypair", name=f"{prefix}-admin", public_key=ssh_key.public_key_openssh, opts=child
            )
            self.ssh_private_key = pulumi.Output.secret(ssh_key.private_key_openssh)
            if mode == "openstack":
                assert network is not None
                depends = self._k3s(name, cfg, prefix, openstack_provider, network, key_pair)
            else:
                depends = self._magnum(name, cfg, prefix, openstack_provider, network, key_pair)

        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.register_outputs(
            {"kubeconfig": self.kubeconfig, "apiEndpoint": self.api_endpoint, "ingressAddress": self.ingress_address}
        )

    def _k3s(
        self,
        name: str,
        cfg: FacilityConfig,
        prefix: str,
        provider: openstack.Provider,
        network: Network,
        key_pair: openstack.compute.Keypair,
    ) -> list[pulumi.Resource]:
        site, cluster = cfg.site, cfg.cluster
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        pki = ClusterPki(f"{name}-pki", opts=pulumi.ResourceOptions(parent=self))
        fip = openstack.networking.FloatingIp(
            f"{name}-api-fip", pool=site.external_network, description=f"{prefix} api and ingress", opts=child
        )
        cp_ips = control_plane_ips(site.node_cidr, cluster.control_plane.count)
        server_url = f"https://{cp_ips[0]}:{API_PORT}"
        ca_names = sorted(pki.ca_certs)
        ssh_keys = list(site.ssh_public_keys)

        token = pulumi.Output.all(pki.ca_certs["server-ca"], pki.join_password).apply(lambda v: [join_token(*v)])
        server_values = pulumi.Output.all(
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
                    node_name=f"{prefix}-control-plane-{index}",
                    k3s=cluster.k3s,
                    server_url=server_url,
                    token=join,
                    taints=[CONTROL_PLANE_TAINT],
                    ssh_public_keys=ssh_keys,
                    server=True,
                    cluster_init=first,
                    node_ip=cp_ips[index],
                    tls_sans=[address, site.dns_name, *cp_ips],
                    pod_cidr=cluster.pod_cidr,
                    service_cidr=cluster.service_cidr,
                    cas={c: CaPair(certs[c], keys[c]) for c in ca_names} if first else {},
                    service_account_key=sa_key if first else "",
                )

            # One file per role: the node that initialises the cluster and one that joins it.
            filename = f"cloud-init/control-plane-{index}.yaml" if index < 2 else None
            return _user_data("cluster", filename, server_values, build)

        control_plane = NodePool(
            f"{name}-control-plane",
            VmSpec(
                role="control-plane",
                flavor=cluster.control_plane.flavor,
                image=site.image,
                count=cluster.control_plane.count,
                key_pair=key_pair.name,
                network_id=network.network_id,
                subnet_id=network.subnet_id,
                security_group_ids=[network.nodes_group.id, network.admin_group.id, network.public_group.id],
                server_group_policy="anti-affinity",
                availability_zone=site.availability_zone,
                fixed_ips=cp_ips,
                keep_bootstrap=True,
                taints=[CONTROL_PLANE_TAINT],
            ),
            prefix,
            server,
            provider,
            opts=pulumi.ResourceOptions(parent=self),
        )
        association = openstack.networking.FloatingIpAssociate(
            f"{name}-api-fip-assoc", floating_ip=fip.address, port_id=control_plane.ports[0].id, opts=child
        )

        for group_name, group in sorted(cluster.node_groups.items()):
            labels = node_labels(group_name, group)
            taints = [t.render() for t in group.taints]

            def agent(
                index: int,
                group_name: str = group_name,
                group: NodeGroup = group,
                labels: dict[str, str] = labels,
                taints: list[str] = taints,
            ) -> pulumi.Output[str]:
                def build(v: list[str]) -> NodeBootstrap:
                    return NodeBootstrap(
                        node_name=f"{prefix}-{group_name}-{index}",
                        k3s=cluster.k3s,
                        server_url=server_url,
                        token=v[0],
                        labels=labels,
                        taints=taints,
                        data_volume=group.volume_gib > 0,
                        ssh_public_keys=ssh_keys,
                        gpu=group.gpu,
                    )

                filename = f"cloud-init/{group_name}.yaml" if index == 0 else None
                return _user_data("cluster", filename, token, build)

            NodePool(
                f"{name}-{group_name}",
                VmSpec(
                    role=group_name,
                    flavor=group.flavor,
                    image=group.image or site.image,
                    count=group.count,
                    key_pair=key_pair.name,
                    network_id=network.network_id,
                    subnet_id=network.subnet_id,
                    # No floating IP reaches workers; ingress arrives through the control plane's.
                    security_group_ids=[network.nodes_group.id],
                    server_group_policy="soft-anti-affinity",
                    availability_zone=site.availability_zone,
                    volume_gib=group.volume_gib,
                    volume_type=group.volume_type,
                    taints=taints,
                ),
                prefix,
                agent,
                provider,
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.api_endpoint = fip.address.apply(lambda a: f"https://{a}:{API_PORT}")
        self.ingress_address = fip.address
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.api_endpoint, pki.ca_certs["server-ca"], pki.admin_cert, pki.admin_key).apply(
                lambda v: render_kubeconfig(prefix, v[0], v[1], v[2], v[3])
            )
        )
        ready = ApiReady(
            f"{name}-api-ready",
            self.api_endpoint,
            pki.ca_certs["server-ca"],
            pki.admin_cert,
            pki.admin_key,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[association, *control_plane.instances]),
        )
        return [association, *control_plane.instances, ready]

    def _magnum(
        self,
        name: str,
        cfg: FacilityConfig,
        prefix: str,
        provider: openstack.Provider,
        network: Network | None,
        key_pair: openstack.compute.Keypair,
    ) -> list[pulumi.Resource]:
        site, cluster = cfg.site, cfg.cluster
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        groups = sorted(cluster.node_groups.items())
        default_name, default = groups[0]
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
            labels=node_labels(default_name, default) | {"kube_tag": cluster.magnum.kube_tag},
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
                labels=node_labels(group_name, group),
                merge_labels=True,
                opts=child,
            )
        self.api_endpoint = magnum.api_address
        self.ingress_address = magnum.api_address.apply(lambda a: a.split("//")[-1].split(":")[0])
        self.kubeconfig = pulumi.Output.secret(magnum.kubeconfig.apply(lambda k: (k or {}).get("raw_config", "")))
        return [magnum]
