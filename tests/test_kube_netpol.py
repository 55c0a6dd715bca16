"""The facility's network policy as np-guard's analyzer computes it (`netpolicy list`, tests/support/npguard.py): from
the plan's NetworkPolicies and the charts' own (none, with our values), between the plan's workloads, the charts'
stand-ins (tests/support/charts, as our values render them) and the pods the cluster runs itself (the ingress
controller and k3s's load balancers in kube-system, cert-manager's ACME solver), and the networks outside.

Into every namespace the facility polices, the connections it allows are exactly the declared flows
(components/flows/declaration.py `facility_flows`): no needed flow blocked, nothing else allowed, ports included;
pods running users' code reach the internet and not the cloud's metadata service. And np-guard's verdicts agree,
connection by connection, with tests/support/netpol.py's reading of the same policies (two independent readings).

The shipped stacks (the autoscaler on wherever the pool runs, as the other Kubernetes tests preview them), and
cms-bari with what they leave off (offload gateways and their load balancers, the squid, the cache's upstream
credential)."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from conftest import SHIPPED_STACKS
from support import charts, netpol
from support.kubecharts import chart_workloads
from support.kubeplan import plan_objects, preview, workloads
from support.npguard import Connection, allowed_connections
from test_wiring import plan_of, variant

from components.config.facility import FacilityConfig
from components.config.loader import build_config
from components.flows.declaration import Flow, facility_flows, user_code
from components.flows.declaration import Peer as FlowPeer
from components.names import ACME_SOLVER_PODS, ACME_SOLVER_PORT, METADATA_CIDR

STACKS = [*SHIPPED_STACKS, "cms-bari-full"]
PROTOCOLS = ("TCP", "UDP", "SCTP")
INTERNET = "192.0.2.80"  # TEST-NET-1: an address on the internet
Ports = dict[str, tuple[tuple[int, int], ...]]
"""Allowed ports by protocol, as merged ranges; every protocol's full range for "all connections"."""


@dataclass(frozen=True)
class Workload:
    """What owns pods, as np-guard names it (`namespace/name[Kind]`), with its pods' labels and ports."""

    namespace: str
    name: str
    kind: str
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    ports: tuple[int, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}[{self.kind}]"


@dataclass(frozen=True)
class Cluster:
    """A stack as np-guard reads it: the manifests, the workloads among them, the policies."""

    objects: list[dict[str, Any]]
    workloads: dict[tuple[str, str, str], Workload]
    policies: list[dict[str, Any]]

    @property
    def policed(self) -> set[str]:
        """Namespaces whose pods some policy restricts ingress to."""
        return {
            p["metadata"]["namespace"] for p in self.policies if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        }


def key(peer: Workload | Any) -> tuple[str, str, str]:
    """A workload's identity, ours or np-guard's `Peer`."""
    return peer.namespace, peer.name, peer.kind


def _pod_of(manifest: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    if manifest["kind"] == "Pod":
        return dict(manifest["metadata"].get("labels") or {}), manifest["spec"]
    template = manifest["spec"]["template"]
    return dict(template["metadata"].get("labels") or {}), template["spec"]


def _pod(namespace: str, name: str, labels: Mapping[str, str], ports: Iterable[int] = ()) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "registry.invalid/stand-in:0"}
    if ports:
        container["ports"] = [{"containerPort": p} for p in ports]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"containers": [container]},
    }


def _config(stack: str) -> FacilityConfig:
    """The config the plan was previewed from: the Kubernetes tests' (autoscaler on where the pool runs) for a
    shipped stack, else the variant's."""
    if stack in SHIPPED_STACKS:
        return preview(stack).config
    _, values, secret = variant(stack)
    return build_config(values, secret)


def _plan(stack: str) -> dict[str, Any]:
    return preview(stack).plan if stack in SHIPPED_STACKS else plan_of(stack)


@cache
def cluster(stack: str) -> Cluster:
    plan, cfg = _plan(stack), _config(stack)
    objects, _ = plan_objects(plan)
    namespaces = {o.name for o in objects if o.kind == "Namespace"} | {"kube-system"}
    found: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
        }
        for n in sorted(namespaces)
    ]
    owners = [o.manifest for o in workloads(objects)] + [c.manifest for c in chart_workloads(plan)]
    # What the cluster runs itself: k3s's Traefik (Magnum's ingress-nginx, also in kube-system) and service load
    # balancers in kube-system; cert-manager's ACME solver, beside the hub.
    owners.append(_pod("kube-system", "ingress-controller", {"app.kubernetes.io/name": "traefik"}))
    if cfg.hub.enabled and cfg.hub.tls.mode == "cert-manager":
        owners.append(_pod("jupyterhub", "acme-solver", ACME_SOLVER_PODS, [ACME_SOLVER_PORT]))
    policies = [
        {"apiVersion": "networking.k8s.io/v1", **{k: o.manifest[k] for k in ("kind", "metadata", "spec")}}
        for o in objects
        if o.kind == "NetworkPolicy"
    ]
    for release in charts.releases(plan):
        policies += charts.network_policies(release.chart, release.values, release.name, release.namespace)
    table = {}
    for manifest in owners:
        labels, spec = _pod_of(manifest)
        ports = tuple(sorted({p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}))
        meta = manifest["metadata"]
        workload = Workload(meta["namespace"], meta["name"], manifest["kind"], labels, ports)
        assert key(workload) not in table, f"two workloads named {workload}"
        table[key(workload)] = workload
    return Cluster(found + owners + policies, table, policies)


@cache
def analysis(stack: str) -> frozenset[Connection]:
    return frozenset(allowed_connections(cluster(stack).objects))


# -- ports ---------------------------------------------------------------------------------------------------------


def _merge(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def ports_of(ranges: Iterable[tuple[str, int, int]] | None) -> Ports:
    """np-guard's connection (None: all) as ranges by protocol."""
    if ranges is None:
        return {p: ((1, 65535),) for p in PROTOCOLS}
    by: dict[str, list[tuple[int, int]]] = {}
    for protocol, lo, hi in ranges:
        by.setdefault(protocol, []).append((lo, hi))
    return {p: _merge(r) for p, r in sorted(by.items())}


def union(*ports: Ports) -> Ports:
    by: dict[str, list[tuple[int, int]]] = {}
    for p in ports:
        for protocol, ranges in p.items():
            by.setdefault(protocol, []).extend(ranges)
    return {p: _merge(r) for p, r in sorted(by.items()) if r}


def flow_ports(flow: Flow) -> Ports:
    """What a declared flow allows: its TCP ports, or everything (the policy then names no port)."""
    return ports_of(None if not flow.ports else [("TCP", p, p) for p in flow.ports])


def show(ports: Ports) -> str:
    return (
        "nothing"
        if not ports
        else "; ".join(f"{p} {','.join(f'{a}-{b}' if a != b else str(a) for a, b in r)}" for p, r in ports.items())
    )


# -- the declaration, read for a workload ---------------------------------------------------------------------------


def selects(peer: FlowPeer, workload: Workload) -> bool:
    return (
        not peer.outside
        and workload.namespace == peer.namespace
        and all(workload.labels.get(k) == v for k, v in peer.pods.items())
    )


def inward(cfg: FacilityConfig) -> list[Flow]:
    return [f for f in facility_flows(cfg) if not f.target.outside]


def declared(flows: list[Flow], src: Workload, dst: Workload) -> Ports:
    return union(*(flow_ports(f) for f in flows if selects(f.source, src) and selects(f.target, dst)))


def _interval(text: str) -> tuple[int, int]:
    if "-" in text:
        lo, hi = text.split("-")
    else:
        network = ipaddress.ip_network(text)
        lo, hi = str(network[0]), str(network[-1])
    return int(ipaddress.ip_address(lo)), int(ipaddress.ip_address(hi))


def by_address(entries: list[tuple[tuple[int, int], Ports]]) -> list[tuple[tuple[int, int], Ports]]:
    """Address ranges with the ports allowed from them, split where any entry starts or ends, merged per piece."""
    cuts = sorted({lo for (lo, _), _ in entries} | {hi + 1 for (_, hi), _ in entries})
    pieces = []
    for lo, nxt in itertools.pairwise(cuts):
        ports = union(*(p for (a, b), p in entries if a <= lo and nxt - 1 <= b))
        if ports:
            pieces.append(((lo, nxt - 1), ports))
    return pieces


def _address_ranges(pieces: list[tuple[tuple[int, int], Ports]]) -> str:
    return ", ".join(f"{ipaddress.ip_address(a)}-{ipaddress.ip_address(b)}: {show(p)}" for (a, b), p in pieces)


# -- the tests --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_np_guard_allows_exactly_the_declared_flows_into_the_facility(stack: str) -> None:
    """Between every pair of workloads, into every policed namespace, np-guard's allowed ports equal the declared
    flows'; from outside the cluster, the allowed address ranges and ports equal the declared networks'."""
    world, cfg = cluster(stack), _config(stack)
    flows, found = inward(cfg), analysis(stack)
    policed = world.policed
    assert {"jupyterhub"} <= policed or not cfg.hub.enabled, policed
    got = {(key(c.src), key(c.dst)): ports_of(c.ports) for c in found if c.src.kind != "IP" and c.dst.kind != "IP"}
    from_outside: dict[tuple[str, str, str], list[tuple[tuple[int, int], Ports]]] = {}
    for c in found:
        if c.src.kind == "IP" and c.dst.kind != "IP":
            from_outside.setdefault(key(c.dst), []).append((_interval(c.src.name), ports_of(c.ports)))
    wrong, checked = [], 0
    for dst in world.workloads.values():
        if dst.namespace not in policed:
            continue
        for src in world.workloads.values():
            if src == dst:
                continue
            want = declared(flows, src, dst)
            allowed = got.get((key(src), key(dst)), {})
            checked += 1
            if allowed != want:
                wrong.append(f"{src} -> {dst}: declared {show(want)}, np-guard allows {show(allowed)}")
        outside_want = [
            (_interval(cidr), flow_ports(f))
            for f in flows
            if f.source.outside and selects(f.target, dst)
            for cidr in f.source.cidrs
        ]
        outside_got = from_outside.get(key(dst), [])
        if by_address(outside_want) != by_address(outside_got):
            wrong.append(
                f"outside -> {dst}: declared {_address_ranges(by_address(outside_want)) or 'nothing'}, "
                f"np-guard allows {_address_ranges(by_address(outside_got)) or 'nothing'}"
            )
    assert not wrong, "np-guard and the declared flows differ:\n" + "\n".join(wrong)
    allowed_pairs = sum(1 for _, d in got if d[0] in policed)
    assert checked > allowed_pairs > 0  # both verdicts reached
    print(f"{stack}: {checked} pairs into {len(policed)} policed namespaces, {allowed_pairs} with allowed ports")


@pytest.mark.parametrize("stack", STACKS)
def test_np_guard_lets_users_code_out_but_not_to_the_metadata_service(stack: str) -> None:
    world, cfg = cluster(stack), _config(stack)
    code = [w for w in world.workloads.values() if any(selects(p, w) for p in user_code(cfg))]
    assert code, "no workload runs users' code"
    metadata = int(ipaddress.ip_address(METADATA_CIDR.split("/")[0]))
    internet = int(ipaddress.ip_address(INTERNET))
    for workload in code:
        out = [c for c in analysis(stack) if c.src.kind != "IP" and key(c.src) == key(workload) and c.dst.kind == "IP"]
        reaches = {
            what: any(lo <= address <= hi and c.allows("TCP", port) for c in out for lo, hi in [_interval(c.dst.name)])
            for what, address, port in (("metadata", metadata, 80), ("internet", internet, 443))
        }
        assert reaches == {"metadata": False, "internet": True}, workload


def _endpoint(workload: Workload) -> netpol.Endpoint:
    return netpol.Endpoint(str(workload), workload.namespace, dict(workload.labels), ports=workload.ports)


@pytest.mark.parametrize("stack", STACKS)
def test_np_guard_and_the_policy_reading_of_the_tests_agree(stack: str) -> None:
    """Connection by connection (every source, every destination, every port a destination listens on or a flow
    names, and one nobody uses), np-guard and tests/support/netpol.py say the same, pods and addresses alike."""
    world, cfg = cluster(stack), _config(stack)
    found = analysis(stack)
    outside = {"a node": str(next(ipaddress.ip_network(cfg.site.node_cidr).hosts())), "the internet": INTERNET}
    for name, gateway in sorted(cfg.offload.gateways.items()):
        outside[f"HPC centre {name}"] = str(next(ipaddress.ip_network(gateway.source_cidrs[0]).hosts()))
    outside["metadata"] = METADATA_CIDR.split("/")[0]
    flows = facility_flows(cfg)

    by_end: dict[tuple[Any, Any], list[Connection]] = {}
    for c in found:
        ends = ("IP" if c.src.kind == "IP" else key(c.src), "IP" if c.dst.kind == "IP" else key(c.dst))
        by_end.setdefault(ends, []).append(c)

    def np_guard(src: Workload | str, dst: Workload | str, port: int) -> bool:
        ends = ("IP" if isinstance(src, str) else key(src), "IP" if isinstance(dst, str) else key(dst))
        return any(
            (not isinstance(src, str) or _contains(c.src.name, src))
            and (not isinstance(dst, str) or _contains(c.dst.name, dst))
            and c.allows("TCP", port)
            for c in by_end.get(ends, [])
        )

    pods = list(world.workloads.values())
    disagree, verdicts = [], set()
    for dst in pods:
        ports = set(dst.ports) | {p for f in flows if selects(f.target, dst) for p in f.ports} | {1}
        for port in sorted(ports):
            for src in pods:
                if src == dst:
                    continue
                ours = netpol.allowed(world.policies, _endpoint(src), _endpoint(dst), port)
                verdicts.add(ours)
                if ours != np_guard(src, dst, port):
                    disagree.append(f"{src} -> {dst}:{port}: netpol.py {ours}, np-guard {not ours}")
            for name, address in outside.items():
                ours = netpol.allowed(world.policies, netpol.Endpoint(name, ip=address), _endpoint(dst), port)
                if ours != np_guard(address, dst, port):
                    disagree.append(f"{name} -> {dst}:{port}: netpol.py {ours}, np-guard {not ours}")
    for src in pods:
        for name, address in outside.items():
            for port in (80, 443):
                ours = netpol.allowed(world.policies, _endpoint(src), netpol.Endpoint(name, ip=address), port)
                if ours != np_guard(src, address, port):
                    disagree.append(f"{src} -> {name}:{port}: netpol.py {ours}, np-guard {not ours}")
    assert not disagree, "\n".join(disagree)
    assert verdicts == {True, False}


def _contains(ip_range: str, address: str) -> bool:
    lo, hi = _interval(ip_range)
    return lo <= int(ipaddress.ip_address(address)) <= hi
