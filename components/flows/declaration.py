"""The flows the facility needs, from its config: who talks to whom, on which ports, and why.
Pure data; `policies` turns it into NetworkPolicies and `afctl graph` draws it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..batch.config import worker_groups
from ..cache.config import node_cache_groups, notebooks_read_node_caches
from ..config.facility import FacilityConfig
from ..names import (
    ACME_SOLVER_PODS,
    ACME_SOLVER_PORT,
    AUTOSCALER,
    CACHE_HTTPS_PORT,
    CACHE_METRICS_PORT,
    CACHE_NAMESPACE,
    CACHE_PORT,
    CACHE_SERVICE,
    COLLECTOR_PORT,
    CONDOR_CM,
    CONDOR_NAMESPACE,
    CONDOR_SCHEDD,
    CONDOR_WORKER,
    CVMFS_NAMESPACE,
    DASK_API_PORT,
    DASK_CONTROLLER_PODS,
    DASK_DASHBOARD_PORT,
    DASK_GATEWAY_PODS,
    DASK_NAMESPACE,
    DASK_PROXY_PORT,
    DASK_SCHEDULER_API_PORT,
    DASK_SCHEDULER_PODS,
    DASK_SCHEDULER_PORT,
    DASK_TRAEFIK_PODS,
    DASK_WORKER_PODS,
    HUB_NAMESPACE,
    HUB_PODS,
    HUB_PORT,
    MONITORING_NAMESPACE,
    NODE_CACHE_SERVICE,
    NOTEBOOK_PODS,
    NOTEBOOK_PORT,
    OFFLOAD_NAMESPACE,
    PROMETHEUS_PODS,
    PROXY_API_PORT,
    PROXY_HTTP_PORT,
    PROXY_PODS,
    SCHEDD_PORT,
    SQUID_PORT,
    SQUID_SERVICE,
    WORKER_GROUP_LABEL,
    app,
    virtual_node,
)


@dataclass(frozen=True)
class Peer:
    """One end of a flow: pods of a namespace (all of them when `pods` is empty), or networks
    outside the pod network (`cidrs`)."""

    name: str
    """Short name, also the node of the picture `afctl graph` draws."""
    namespace: str | None = None
    pods: Mapping[str, str] = field(default_factory=dict)
    cidrs: tuple[str, ...] = ()

    @property
    def outside(self) -> bool:
        return self.namespace is None


@dataclass(frozen=True)
class Flow:
    """Connections from `source` to `target` on `ports` (all ports when empty)."""

    source: Peer
    target: Peer
    ports: tuple[int, ...]
    what: str
    """Why, in the words of the picture."""


INGRESS_CONTROLLER = Peer("ingress controller", "kube-system")
"""k3s's traefik and Magnum's ingress-nginx both run in kube-system."""
PROXY = Peer("proxy", HUB_NAMESPACE, PROXY_PODS)
HUB = Peer("hub", HUB_NAMESPACE, HUB_PODS)
NOTEBOOKS = Peer("notebooks", HUB_NAMESPACE, NOTEBOOK_PODS)
ACME_SOLVER = Peer("ACME solver", HUB_NAMESPACE, ACME_SOLVER_PODS)
PROMETHEUS = Peer("prometheus", MONITORING_NAMESPACE, PROMETHEUS_PODS)
MONITORING = Peer("monitoring stack", MONITORING_NAMESPACE)
CACHE = Peer("cache", CACHE_NAMESPACE, app(CACHE_SERVICE))
NODE_CACHES = Peer("node caches", CACHE_NAMESPACE, app(NODE_CACHE_SERVICE))
CENTRAL_MANAGER = Peer("central manager", CONDOR_NAMESPACE, app(CONDOR_CM))
SCHEDD = Peer("schedd", CONDOR_NAMESPACE, app(CONDOR_SCHEDD))
AUTOSCALER_PODS = Peer("autoscaler", CONDOR_NAMESPACE, app(AUTOSCALER))
CVMFS_CLIENTS = Peer("CVMFS clients", CVMFS_NAMESPACE)
SQUID = Peer("squid", CVMFS_NAMESPACE, app(SQUID_SERVICE))


def workers(group: str) -> Peer:
    """One worker group's pods."""
    return Peer(f"workers {group}", CONDOR_NAMESPACE, {**app(CONDOR_WORKER), WORKER_GROUP_LABEL: group})


def _hub_flows(cfg: FacilityConfig) -> list[Flow]:
    flows = [
        Flow(INGRESS_CONTROLLER, PROXY, (PROXY_HTTP_PORT,), "HTTPS to the hub"),
        Flow(PROXY, HUB, (HUB_PORT,), "hub pages"),
        Flow(HUB, PROXY, (PROXY_API_PORT,), "routes"),
        Flow(PROXY, NOTEBOOKS, (NOTEBOOK_PORT,), "notebook pages"),
        Flow(HUB, NOTEBOOKS, (NOTEBOOK_PORT,), "spawn and cull"),
        Flow(NOTEBOOKS, HUB, (HUB_PORT,), "hub API, token refresh"),
    ]
    if cfg.hub.tls.mode == "cert-manager":
        flows.append(Flow(INGRESS_CONTROLLER, ACME_SOLVER, (ACME_SOLVER_PORT,), "ACME HTTP-01 challenge"))
    if cfg.monitoring.enabled:
        flows.append(Flow(PROMETHEUS, HUB, (HUB_PORT,), "scrapes"))
    return flows


def _local_groups(cfg: FacilityConfig) -> list[str]:
    """The pool's worker groups in the cluster (node groups with role batch, the control plane
    when it has that role), as the batch layer deploys them."""
    groups = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload)
    return sorted(name for name, group in groups.items() if group.local)


def _batch_flows(cfg: FacilityConfig) -> list[Flow]:
    """Daemons reach each other on their shared ports; notebooks submit and query; the
    autoscaler reads the pool and drains workers; offloaded workers come in from their centres."""
    local = [workers(g) for g in _local_groups(cfg)]
    flows = []
    if cfg.hub.enabled:
        flows += [
            Flow(NOTEBOOKS, SCHEDD, (SCHEDD_PORT,), "submit (IAM token)"),
            Flow(NOTEBOOKS, CENTRAL_MANAGER, (COLLECTOR_PORT,), "condor_status"),
        ]
    flows += [
        Flow(SCHEDD, CENTRAL_MANAGER, (COLLECTOR_PORT,), "advertise"),
        Flow(CENTRAL_MANAGER, SCHEDD, (SCHEDD_PORT,), "matches"),
    ]
    for group in local:
        flows += [
            Flow(group, CENTRAL_MANAGER, (COLLECTOR_PORT,), "advertise"),
            Flow(group, SCHEDD, (SCHEDD_PORT,), "job updates"),
            Flow(SCHEDD, group, (COLLECTOR_PORT,), "claims, starts jobs"),
            Flow(CENTRAL_MANAGER, group, (COLLECTOR_PORT,), "match notices"),
        ]
    if cfg.autoscaler.enabled:
        flows += [
            Flow(AUTOSCALER_PODS, CENTRAL_MANAGER, (COLLECTOR_PORT,), "reads slots"),
            Flow(AUTOSCALER_PODS, SCHEDD, (SCHEDD_PORT,), "reads the queue"),
            *(Flow(AUTOSCALER_PODS, group, (COLLECTOR_PORT,), "drains") for group in local),
        ]
        if cfg.monitoring.enabled:
            flows.append(Flow(PROMETHEUS, AUTOSCALER_PODS, (cfg.autoscaler.metrics_port,), "scrapes"))
    if cfg.offload.gateways:
        # Offloaded workers come through the published load balancers, which admit only the
        # centres' networks (loadBalancerSourceRanges). What reaches the pods is the balancer's
        # traffic: k3s's service load balancer forwards from its pods in kube-system, a cloud
        # balancer from the nodes; the centres' own addresses where the balancer keeps them.
        centres = tuple(sorted({c for g in cfg.offload.gateways.values() for c in g.source_cidrs}))
        for balancer in (
            Peer("load balancer", "kube-system"),
            Peer("nodes", cidrs=(cfg.site.node_cidr,)),
            Peer("HPC centres", cidrs=centres),
        ):
            flows += [
                Flow(balancer, CENTRAL_MANAGER, (COLLECTOR_PORT,), "offloaded workers advertise (CCB)"),
                Flow(balancer, SCHEDD, (SCHEDD_PORT,), "offloaded job updates"),
            ]
    return flows


def user_code(cfg: FacilityConfig) -> list[Peer]:
    """Pods that run users' code: notebooks, local batch workers and Dask clusters."""
    peers = [NOTEBOOKS] if cfg.hub.enabled else []
    if cfg.condor.enabled:
        peers += [workers(g) for g in _local_groups(cfg)]
    if cfg.dask.enabled:
        peers += [DASK_SCHEDULERS, DASK_WORKERS]
    return peers


DASK_PROXY = Peer("dask gateway proxy", DASK_NAMESPACE, DASK_TRAEFIK_PODS)
DASK_GATEWAY = Peer("dask gateway", DASK_NAMESPACE, DASK_GATEWAY_PODS)
DASK_CONTROLLER = Peer("dask controller", DASK_NAMESPACE, DASK_CONTROLLER_PODS)
DASK_SCHEDULERS = Peer("dask schedulers", DASK_NAMESPACE, DASK_SCHEDULER_PODS)
DASK_WORKERS = Peer("dask workers", DASK_NAMESPACE, DASK_WORKER_PODS)


def _dask_flows(cfg: FacilityConfig) -> list[Flow]:
    """Notebooks reach the gateway (API, and Dask's TLS to their schedulers, through its proxy);
    the gateway checks tokens with the hub; schedulers and workers talk; workers read through
    the cache; the hub stops a stopped server's clusters; `HTCondorCluster` workers in the pool
    join the notebook's own scheduler."""
    flows = [
        Flow(NOTEBOOKS, DASK_PROXY, (DASK_PROXY_PORT,), "Dask Gateway API, Dask over TLS"),
        Flow(PROXY, DASK_PROXY, (DASK_PROXY_PORT,), "Dask dashboards (/services/dask-gateway/)"),
        Flow(HUB, DASK_PROXY, (DASK_PROXY_PORT,), "stops a stopped server's clusters"),
        Flow(DASK_PROXY, DASK_GATEWAY, (DASK_API_PORT,), "API requests"),
        Flow(DASK_PROXY, DASK_SCHEDULERS, (DASK_SCHEDULER_PORT, DASK_DASHBOARD_PORT), "clients, dashboards"),
        Flow(DASK_GATEWAY, HUB, (HUB_PORT,), "checks users' tokens and groups"),
        Flow(DASK_GATEWAY, DASK_SCHEDULERS, (DASK_SCHEDULER_API_PORT,), "scale, adapt"),
        Flow(DASK_SCHEDULERS, DASK_GATEWAY, (DASK_API_PORT,), "heartbeats"),
        Flow(DASK_CONTROLLER, DASK_GATEWAY, (DASK_API_PORT,), "cluster state"),
        Flow(DASK_WORKERS, DASK_SCHEDULERS, (DASK_SCHEDULER_PORT,), "workers join"),
        Flow(DASK_SCHEDULERS, DASK_WORKERS, (), "tasks (ephemeral ports)"),
        Flow(DASK_WORKERS, DASK_WORKERS, (), "data between workers (ephemeral ports)"),
    ]
    if cfg.cache.enabled:
        flows.append(Flow(DASK_WORKERS, CACHE, (CACHE_PORT, CACHE_HTTPS_PORT), "root:// reads, user's token"))
    if cfg.monitoring.enabled:
        flows += [
            Flow(PROMETHEUS, DASK_SCHEDULERS, (DASK_DASHBOARD_PORT,), "scrapes"),
            Flow(PROMETHEUS, DASK_WORKERS, (DASK_DASHBOARD_PORT,), "scrapes"),
        ]
    if cfg.condor.enabled and cfg.dask.jobqueue:
        flows += [Flow(workers(g), NOTEBOOKS, (), "HTCondorCluster workers join") for g in _local_groups(cfg)]
    return flows


def _cache_flows(cfg: FacilityConfig) -> list[Flow]:
    readers = ([NOTEBOOKS] if cfg.hub.enabled else []) + [workers(g) for g in _local_groups(cfg) if cfg.condor.enabled]
    flows = [Flow(r, CACHE, (CACHE_PORT, CACHE_HTTPS_PORT), "root:// and davs:// reads") for r in readers]
    if cfg.monitoring.enabled:
        flows.append(Flow(PROMETHEUS, CACHE, (CACHE_METRICS_PORT,), "scrapes"))
    return flows + _node_cache_flows(cfg)


def _node_cache_flows(cfg: FacilityConfig) -> list[Flow]:
    """Notebooks and workers on nodes with a node cache read through it (and may still name the site cache); the
    node caches read the site cache with their own token."""
    groups = node_cache_groups(cfg.cache, cfg.cluster)
    if not groups:
        return []
    readers = [NOTEBOOKS] if cfg.hub.enabled and notebooks_read_node_caches(cfg.cache, cfg.cluster) else []
    if cfg.condor.enabled:
        readers += [workers(g) for g in _local_groups(cfg) if g in groups]
    flows = [Flow(r, NODE_CACHES, (CACHE_PORT, CACHE_HTTPS_PORT), "reads on its node") for r in readers]
    flows.append(Flow(NODE_CACHES, CACHE, (CACHE_PORT,), "misses, with its own token"))
    if cfg.monitoring.enabled:
        flows.append(Flow(PROMETHEUS, NODE_CACHES, (CACHE_METRICS_PORT,), "scrapes"))
    return flows


def _port(url_or_host: str, default: int) -> int:
    host = url_or_host.split("://", 1)[-1].split("/", 1)[0]
    return int(host.rsplit(":", 1)[1]) if ":" in host else default


def outward_flows(cfg: FacilityConfig) -> list[Flow]:
    """Flows out of the cluster: drawn, not restricted (the policies restrict what comes in)."""
    internet = ("0.0.0.0/0",)
    flows = []
    if cfg.identity is not None and cfg.hub.enabled:
        iam = Peer("IAM", cidrs=internet)
        flows.append(Flow(HUB, iam, (_port(str(cfg.identity.issuer), 443),), "OIDC login, token refresh"))
    if cfg.cache.enabled:
        federation = Peer("data federation", cidrs=internet)
        misses = "misses, with its own credential" if cfg.cache.upstream is not None else "misses (no credential)"
        flows.append(Flow(CACHE, federation, (_port(cfg.cache.origin, 1094),), misses))
    if cfg.cvmfs.enabled:
        stratum1 = Peer("CVMFS Stratum-1", cidrs=internet)
        source = SQUID if cfg.cvmfs.squid_proxy else CVMFS_CLIENTS
        flows.append(Flow(source, stratum1, (80, 8000), "repositories over HTTP"))
    for name, gateway in sorted(cfg.offload.gateways.items()):
        centre = Peer(f"HPC centre {name}", cidrs=tuple(gateway.source_cidrs))
        flows.append(
            Flow(
                Peer(f"virtual kubelet {name}", OFFLOAD_NAMESPACE, app(virtual_node(name))),
                centre,
                (_port(gateway.endpoint, 443),),
                "interLink API (token)",
            )
        )
    return flows


def facility_flows(cfg: FacilityConfig) -> list[Flow]:
    """Every flow the stack needs into the facility's namespaces (what the policies allow) and
    out of the cluster (`outward_flows`)."""
    flows: list[Flow] = []
    if cfg.hub.enabled:
        flows += _hub_flows(cfg)
    if cfg.condor.enabled:
        flows += _batch_flows(cfg)
    if cfg.cache.enabled:
        flows += _cache_flows(cfg)
    if cfg.dask.enabled:
        flows += _dask_flows(cfg)
    if cfg.cvmfs.enabled and cfg.cvmfs.squid_proxy:
        flows.append(Flow(CVMFS_CLIENTS, SQUID, (SQUID_PORT,), "CVMFS through the squid"))
    if cfg.monitoring.enabled:
        # Prometheus, Grafana, the operator and the exporters of the monitoring stack reach each
        # other on their own ports; nothing outside it comes in (Grafana is reached by port-forward).
        flows.append(Flow(MONITORING, MONITORING, (), "the monitoring stack's own traffic"))
    return flows + outward_flows(cfg)
