"""Exposure: what security group rules let in, and from where."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from .facts import Facts
from .walk import Resource, opaque

SECGROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
HTTPS = 443
ADMIN_PORTS = {22: "ssh", 6443: "the Kubernetes API"}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _source(props: Mapping[str, Any]) -> IpNetwork | None:
    """The address range an ingress rule admits; None when it admits a security group's
    members (or cannot be known). Neutron reads a rule without a remote as the whole internet."""
    if props.get("direction") != "ingress" or props.get("remoteGroupId"):
        return None
    prefix = props.get("remoteIpPrefix")
    if opaque(prefix):
        return None
    if not prefix:
        prefix = "::/0" if props.get("ethertype") == "IPv6" else "0.0.0.0/0"
    return ipaddress.ip_network(str(prefix), strict=False)


def _ports(props: Mapping[str, Any]) -> tuple[int, int]:
    """The port range a rule opens: everything unless a TCP/UDP range is given."""
    low, high = props.get("portRangeMin"), props.get("portRangeMax")
    if props.get("protocol") not in ("tcp", "udp", "6", "17") or not isinstance(low, int):
        return 1, 65535
    return low, high if isinstance(high, int) else low


def _what(props: Mapping[str, Any]) -> str:
    low, high = _ports(props)
    protocol = props.get("protocol") or "any protocol"
    if (low, high) == (1, 65535):
        return f"{protocol}, every port"
    return f"{protocol} {low}" if low == high else f"{protocol} {low}-{high}"


def world_open_ports(resource: Resource, facts: Facts) -> list[str]:
    """Only HTTPS, and ports the site declares public, may be open to 0.0.0.0/0 or ::/0."""
    if resource.type != SECGROUP_RULE:
        return []
    source = _source(resource.props)
    if source is None or source.prefixlen != 0:
        return []
    allowed = {HTTPS, *facts.public_ports}
    low, high = _ports(resource.props)
    if resource.props.get("protocol") == "tcp" and low == high and low in allowed:
        return []
    return [
        f"security group rule {resource.name} opens {_what(resource.props)} to {source}: only HTTPS (tcp {HTTPS}) "
        "may be open to the internet; restrict remoteIpPrefix to the networks that need it, or declare a "
        "deliberately public port in af:policy.publicPorts"
    ]


def _within(source: IpNetwork, cidrs: tuple[str, ...]) -> bool:
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        if network.version == source.version and source.subnet_of(network):  # type: ignore[arg-type]
            return True
    return False


def admin_ports_from_admin_cidrs(resource: Resource, facts: Facts) -> list[str]:
    """SSH (22) and the Kubernetes API (6443) only from the site's admin networks."""
    if resource.type != SECGROUP_RULE:
        return []
    source = _source(resource.props)
    if source is None:
        return []
    low, high = _ports(resource.props)
    exposed = [what for port, what in ADMIN_PORTS.items() if low <= port <= high]
    if not exposed or _within(source, facts.admin_cidrs):
        return []
    admins = ", ".join(facts.admin_cidrs) or "none in the pack config: pass the file afctl preview writes"
    return [
        f"security group rule {resource.name} opens {' and '.join(exposed)} ({_what(resource.props)}) to {source}, "
        f"outside the admin networks ({admins}): set remoteIpPrefix to one of af:site.adminCidrs"
    ]
