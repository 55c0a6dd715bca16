"""The facility's private network, its way out, and least-privilege security groups."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from ..names import COLLECTOR_PORT, SCHEDD_PORT
from ..offload.config import Offload
from .config import Site

API_PORT = 6443
SSH_PORT = 22
HTTPS_PORT = 443
HTTP_PORT = 80
# Fixed addresses for control-plane nodes sit below the DHCP pool, so they never collide.
_FIXED_HOSTS = 16


@dataclass(frozen=True)
class IngressRule:
    """One allowed inbound flow; pure data so the rule set can be checked without a cloud."""

    description: str
    port: int
    cidr: str


def admin_rules(site: Site) -> list[IngressRule]:
    """SSH and the Kubernetes API, only from the site's admin networks."""
    return [
        IngressRule(f"{what} from {cidr}", port, cidr)
        for cidr in site.admin_cidrs
        for what, port in (("ssh", SSH_PORT), ("kubernetes api", API_PORT))
    ]


def public_rules(http: bool = False) -> list[IngressRule]:
    """The hub's HTTPS entry point is open to the world; with `http` (a hub on k3s) plain HTTP
    too, which only redirects: Let's Encrypt validates the ACME HTTP-01 challenge on port 80,
    and the hub's Ingress answers everything else there with a redirect to HTTPS."""
    rules = [IngressRule("https from anywhere", HTTPS_PORT, "0.0.0.0/0")]
    if http:
        rules.append(IngressRule("http from anywhere: acme http-01 and the redirect to https", HTTP_PORT, "0.0.0.0/0"))
    return rules


def pool_rules(offload: Offload) -> list[IngressRule]:
    """The HTCondor pool's published ports, only from the networks of the HPC centres whose
    workers join it (none without offload gateways)."""
    return [
        IngressRule(f"htcondor {what} from gateway {name} {cidr}", port, cidr)
        for name, gateway in sorted(offload.gateways.items())
        for cidr in gateway.source_cidrs
        for what, port in (("collector", COLLECTOR_PORT), ("schedd", SCHEDD_PORT))
    ]


def control_plane_ips(node_cidr: str, count: int) -> list[str]:
    hosts = ipaddress.ip_network(node_cidr).hosts()
    addresses = [str(next(hosts)) for _ in range(10 + count)]
    return addresses[10:]


def dhcp_pool(node_cidr: str) -> tuple[str, str]:
    net = ipaddress.ip_network(node_cidr)
    return str(net.network_address + _FIXED_HOSTS), str(net.broadcast_address - 1)


def _ethertype(cidr: str) -> str:
    return "IPv6" if ipaddress.ip_network(cidr).version == 6 else "IPv4"


class Network(pulumi.ComponentResource):
    """Network, subnet, router to the external network, and three security groups:
    `nodes` (anything between facility VMs), `admin` (SSH/API from admin CIDRs),
    `public` (HTTPS)."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    nodes_group: openstack.networking.SecGroup
    admin_group: openstack.networking.SecGroup
    public_group: openstack.networking.SecGroup

    def __init__(
        self,
        name: str,
        site: Site,
        offload: Offload,
        prefix: str,
        provider: openstack.Provider,
        opts: pulumi.ResourceOptions | None = None,
        http: bool = False,
    ) -> None:
        """`http`: open port 80 to the world too (`public_rules`)."""
        super().__init__("af:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)

        network = openstack.networking.Network(f"{name}-net", name=f"{prefix}-net", admin_state_up=True, opts=child)
        start, end = dhcp_pool(site.node_cidr)
        subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            name=f"{prefix}-subnet",
            network_id=network.id,
            cidr=site.node_cidr,
            ip_version=4,
            dns_nameservers=site.dns_nameservers,
            allocation_pools=[openstack.networking.SubnetAllocationPoolArgs(start=start, end=end)],
            opts=child,
        )
        external = openstack.networking.get_network_output(
            name=site.external_network, opts=pulumi.InvokeOutputOptions(parent=self, provider=provider)
        )
        router = openstack.networking.Router(
            f"{name}-router", name=f"{prefix}-router", external_network_id=external.id, opts=child
        )
        openstack.networking.RouterInterface(f"{name}-router-if", router_id=router.id, subnet_id=subnet.id, opts=child)

        self.nodes_group = self._group(name, prefix, "nodes", "traffic between facility nodes", child)
        for ethertype in ("IPv4", "IPv6"):
            openstack.networking.SecGroupRule(
                f"{name}-nodes-internal-{ethertype.lower()}",
                direction="ingress",
                ethertype=ethertype,
                remote_group_id=self.nodes_group.id,
                security_group_id=self.nodes_group.id,
                description="any protocol between facility nodes",
                opts=child,
            )
        self.admin_group = self._group(name, prefix, "admin", "ssh and kubernetes api from admin networks", child)
        self._rules(name, "admin", self.admin_group, admin_rules(site), child)
        self.public_group = self._group(name, prefix, "public", "https entry point", child)
        self._rules(name, "public", self.public_group, public_rules(http) + pool_rules(offload), child)

        self.network_id = network.id
        self.subnet_id = subnet.id
        self.register_outputs({"networkId": network.id, "subnetId": subnet.id, "routerId": router.id})

    @staticmethod
    def _group(
        name: str, prefix: str, role: str, description: str, opts: pulumi.ResourceOptions
    ) -> openstack.networking.SecGroup:
        return openstack.networking.SecGroup(
            f"{name}-{role}", name=f"{prefix}-{role}", description=description, opts=opts
        )

    @staticmethod
    def _rules(
        name: str,
        role: str,
        group: openstack.networking.SecGroup,
        rules: list[IngressRule],
        opts: pulumi.ResourceOptions,
    ) -> None:
        for rule in rules:
            slug = f"{rule.port}-{rule.cidr.replace('/', '-').replace(':', '-').replace('.', '-')}"
            openstack.networking.SecGroupRule(
                f"{name}-{role}-{slug}",
                direction="ingress",
                ethertype=_ethertype(rule.cidr),
                protocol="tcp",
                port_range_min=rule.port,
                port_range_max=rule.port,
                remote_ip_prefix=rule.cidr,
                security_group_id=group.id,
                description=rule.description,
                opts=opts,
            )
