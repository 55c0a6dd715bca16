"""Exposure: what security group rules let in, and from where."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from .facts import Facts
from .walk import Finding, Resource, dig, helm_values, label, mappings, opaque

SECGROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
TRAEFIK_MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
TRAEFIK_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"
NGINX_REDIRECTS = ("nginx.ingress.kubernetes.io/ssl-redirect", "nginx.ingress.kubernetes.io/force-ssl-redirect")
HTTPS = 443
HTTP = 80
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


def _world_open_tcp(resource: Resource) -> tuple[IpNetwork, int] | None:
    """(source, port) of a rule that opens exactly one TCP port to the whole internet."""
    if resource.type != SECGROUP_RULE:
        return None
    source = _source(resource.props)
    low, high = _ports(resource.props)
    if source is None or source.prefixlen != 0 or resource.props.get("protocol") != "tcp" or low != high:
        return None
    return source, low


def world_open_ports(resource: Resource, facts: Facts) -> list[str]:
    """Only HTTPS, and ports the site declares public, may be open to 0.0.0.0/0 or ::/0; and
    HTTP (tcp 80), which the rule `http-redirects-to-https` judges from the whole plan."""
    if resource.type != SECGROUP_RULE:
        return []
    source = _source(resource.props)
    if source is None or source.prefixlen != 0:
        return []
    single = _world_open_tcp(resource)
    if single is not None and single[1] in {HTTPS, HTTP, *facts.public_ports}:
        return []
    return [
        f"security group rule {resource.name} opens {_what(resource.props)} to {source}: only HTTPS (tcp {HTTPS}), "
        f"and HTTP (tcp {HTTP}) that only redirects to it, may be open to the internet; restrict remoteIpPrefix "
        "to the networks that need it, or declare a deliberately public port in af:policy.publicPorts"
    ]


def _redirects(ingress_class: Any, annotations: Any, namespace: str, middlewares: Mapping[str, Any]) -> str | None:
    """None when an Ingress of this class with these annotations, in this namespace, answers
    HTTP with a redirect to HTTPS; else what is missing. `middlewares`: the plan's traefik
    Middlewares' specs by (namespace, name)."""
    annotations = annotations if isinstance(annotations, Mapping) else {}
    if ingress_class == "nginx":
        if any(str(annotations.get(key)).lower() == "true" for key in NGINX_REDIRECTS):
            return None
        return f'no {NGINX_REDIRECTS[0]}: "true" annotation'
    if ingress_class == "traefik":
        # An Ingress names a CRD Middleware `<namespace>-<name>@kubernetescrd`; the rule asks for
        # one in the Ingress's own namespace, which needs no cross-namespace references.
        refs = {ref.strip() for ref in str(annotations.get(TRAEFIK_MIDDLEWARES) or "").split(",")}
        for (where, name), spec in middlewares.items():
            named = where == namespace and f"{where}-{name}@kubernetescrd" in refs
            if named and dig(spec, "redirectScheme", "scheme") == "https":
                return None
        return (
            f"no Middleware of the plan with redirectScheme https in namespace {namespace} "
            f"in its {TRAEFIK_MIDDLEWARES} annotation"
        )
    return f"ingress class {ingress_class!r}, whose redirect to HTTPS the rule does not know"


def _ingresses(resource: Resource) -> list[tuple[str, Any, Any, str]]:
    """(what, class, annotations, namespace) of every Ingress a resource declares: an Ingress
    object, or a Helm release's `ingress` mappings with `enabled: true` (the charts' convention)."""
    if resource.type == INGRESS:
        meta = resource.props.get("metadata")
        namespace = str(dig(meta, "namespace") or "default")
        return [(label(resource), dig(resource.props, "spec", "ingressClassName"), dig(meta, "annotations"), namespace)]
    values = helm_values(resource)
    namespace = str(resource.props.get("namespace") or "default")
    return [
        (
            f"{label(resource)}: values {'.'.join(path)}",
            ingress.get("ingressClassName"),
            ingress.get("annotations"),
            namespace,
        )
        for path, ingress in (mappings(values) if values is not None else ())
        if path and path[-1] == "ingress" and ingress.get("enabled") is True
    ]


def _opens_http(resource: Resource) -> bool:
    single = _world_open_tcp(resource)
    return single is not None and single[1] == HTTP


def http_redirects_to_https(resources: Sequence[Resource], facts: Facts) -> list[Finding]:
    """HTTP (tcp 80) open to the internet serves nothing but redirects to HTTPS, and the ACME
    HTTP-01 challenge (Let's Encrypt validates it on port 80; cert-manager answers it with an
    Ingress of its own it makes at run time, for `/.well-known/acme-challenge/<token>` only).

    The rule knows it from the plan: every Ingress the plan declares, as an object or in a Helm
    release's values, carries its class's redirect: for traefik a `router.middlewares` annotation
    naming a Middleware of the plan whose `redirectScheme` is https, for ingress-nginx
    `ssl-redirect: "true"`. Port 80 declared in `af:policy.publicPorts` is the site's deliberate
    choice and not judged."""
    opened = [r for r in resources if _opens_http(r)]
    if not opened or HTTP in facts.public_ports:
        return []
    middlewares = {
        (str(dig(r.props, "metadata", "namespace") or "default"), str(dig(r.props, "metadata", "name"))): r.props.get(
            "spec"
        )
        for r in resources
        if r.type == TRAEFIK_MIDDLEWARE
    }
    rules = ", ".join(r.name for r in opened)
    found: list[Finding] = []
    routes = 0
    for resource in resources:
        for what, ingress_class, notes, namespace in _ingresses(resource):
            routes += 1
            missing = _redirects(ingress_class, notes, namespace, middlewares)
            if missing:
                message = f"{what} is served on HTTP, open to the internet by {rules}, without a redirect: {missing}"
                found.append(Finding(message, resource.urn))
    if routes:
        return found
    return [
        Finding(
            f"security group rule {r.name} opens tcp {HTTP} to the internet and no Ingress of the plan redirects "
            "it to HTTPS: close it, or declare it in af:policy.publicPorts",
            r.urn,
        )
        for r in opened
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
