"""The facility owns its network policy: the NetworkPolicies of every stack's plan allow exactly the
flows the facility declares into its namespaces, no more and no less, and pods running users'
code reach anything but the cloud's metadata service.

Policies are read from the plan (and from the charts as our values render them), endpoints are
the plan's pods and the charts' stand-ins plus what comes from outside; `support.netpol` says
what the policies allow, as the Kubernetes API defines it."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from support import charts, netpol, placement
from test_wiring import STACKS, plan_of, variant

from components.config.loader import build_config
from components.flows.declaration import Flow, Peer, facility_flows, user_code
from components.names import ACME_SOLVER_PODS, ACME_SOLVER_PORT, HUB_NAMESPACE, METADATA_CIDR

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INTERNET = "192.0.2.80"  # TEST-NET-1: stands for any address on the internet


def _config(stack: str):
    _, values, secret = variant(stack)
    return build_config(values, secret)


def policies(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [
        {"metadata": r["inputs"]["metadata"], "spec": r["inputs"]["spec"]}
        for r in plan["resources"]
        if r["type"] == NETWORK_POLICY
    ]
    for release in charts.releases(plan):
        found += charts.network_policies(release.chart, release.values, release.name, release.namespace)
    return found


def _host(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


def endpoints(plan: dict[str, Any], cfg) -> list[netpol.Endpoint]:
    """The plan's pods, the pods the cluster makes itself, and what comes from outside."""
    found = []
    for pod in placement.pods(plan):
        namespace = pod.owner.split(" ")[1].split("/")[0]
        ports = tuple(sorted({p["containerPort"] for c in pod.spec.get("containers", []) for p in c.get("ports", [])}))
        found.append(netpol.Endpoint(pod.owner, namespace, dict(pod.labels), ports=ports))
    found.append(netpol.Endpoint("ingress controller", "kube-system", {"app.kubernetes.io/name": "traefik"}))
    if cfg.hub.enabled and cfg.hub.tls.mode == "cert-manager":
        found.append(netpol.Endpoint("ACME solver", HUB_NAMESPACE, ACME_SOLVER_PODS, ports=(ACME_SOLVER_PORT,)))
    found.append(netpol.Endpoint("a node", ip=_host(cfg.site.node_cidr)))
    found.append(netpol.Endpoint("the internet", ip=INTERNET))
    for name, gateway in sorted(cfg.offload.gateways.items()):
        found.append(netpol.Endpoint(f"HPC centre {name}", ip=_host(gateway.source_cidrs[0])))
    return found


def _selects(peer: Peer, endpoint: netpol.Endpoint) -> bool:
    if peer.outside:
        return endpoint.ip is not None and any(
            ipaddress.ip_address(endpoint.ip) in ipaddress.ip_network(c) for c in peer.cidrs
        )
    return endpoint.namespace == peer.namespace and all(endpoint.labels.get(k) == v for k, v in peer.pods.items())


def declared(flows: list[Flow], source: netpol.Endpoint, target: netpol.Endpoint, port: int) -> bool:
    return any(
        _selects(f.source, source) and _selects(f.target, target) and (not f.ports or port in f.ports) for f in flows
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_policies_allow_every_declared_flow_and_nothing_else(stack):
    plan, cfg = plan_of(stack), _config(stack)
    flows, rendered = facility_flows(cfg), policies(plan)
    policed = {p["metadata"]["namespace"] for p in rendered}
    assert {"condor", "jupyterhub", "monitoring"} <= policed or stack == "dev", policed
    points = endpoints(plan, cfg)
    missing, extra, allowed_count, denied_count = [], [], 0, 0
    for target in points:
        if target.namespace not in policed:
            continue
        declared_ports = {p for f in flows if _selects(f.target, target) for p in f.ports}
        for port in sorted(set(target.ports) | declared_ports):
            for source in points:
                if source is target:
                    continue
                want = declared(flows, source, target, port)
                got = netpol.allowed(rendered, source, target, port)
                allowed_count += got
                denied_count += not got
                if want and not got:
                    missing.append(f"{source.name} -> {target.name}:{port}")
                elif got and not want:
                    extra.append(f"{source.name} -> {target.name}:{port}")
    assert missing == [], "declared flows the policies block"
    assert extra == [], "flows the policies allow that nobody declared"
    assert allowed_count and denied_count  # both verdicts were reached: the check is not vacuous


@pytest.mark.parametrize("stack", STACKS)
def test_users_code_reaches_the_internet_and_the_cluster_but_not_the_metadata_service(stack):
    plan, cfg = plan_of(stack), _config(stack)
    rendered = policies(plan)
    metadata = netpol.Endpoint("metadata", ip=METADATA_CIDR.split("/")[0])
    internet = netpol.Endpoint("the internet", ip=INTERNET)
    code = [e for e in endpoints(plan, cfg) if any(_selects(p, e) for p in user_code(cfg))]
    assert code, "no pod runs users' code"
    for pod in code:
        assert not netpol.allowed(rendered, pod, metadata, 80), pod.name
        assert netpol.allowed(rendered, pod, internet, 443), pod.name


def test_notebooks_reach_the_cache_and_the_pool_and_prometheus_the_hub():
    """Issue 14 items 1 and 2, by name, on the stack with everything on."""
    plan, cfg = plan_of("cms-bari-full"), _config("cms-bari-full")
    rendered, points = policies(plan), endpoints(plan, cfg)

    def one(prefix: str) -> netpol.Endpoint:
        return next(e for e in points if e.name.startswith(prefix))

    notebook = one("Pod jupyterhub/jupyter-small")
    for target, port in (("StatefulSet xcache/af-xcache", 1094), ("StatefulSet condor/af-condor-schedd", 9619)):
        assert netpol.allowed(rendered, notebook, one(target), port)
    assert netpol.allowed(rendered, notebook, one("Deployment condor/af-condor-cm"), 9618)
    assert netpol.allowed(rendered, one("StatefulSet monitoring/prometheus"), one("Deployment jupyterhub/hub"), 8081)
    assert not netpol.allowed(rendered, notebook, one("Deployment condor/af-condor-worker-cpu"), 9618)
