"""The network flows the Dask layer needs, as data for the facility's flow declaration (its
NetworkPolicies and `afctl graph`). Each is (from, to, port, why); endpoints are
`<namespace>/<workload>`; `*` is every pod of the namespace."""

from __future__ import annotations

from typing import NamedTuple

from ..config import FacilityConfig
from .gateway import API_PORT, DASHBOARD_PORT, NAMESPACE, SCHEDULER_PORT, TRAEFIK_PORT

HUB = "jupyterhub/hub"
HUB_PORT = 8081
PROXY = "jupyterhub/proxy"
NOTEBOOKS = "jupyterhub/notebooks"
TRAEFIK = f"{NAMESPACE}/traefik"
GATEWAY = f"{NAMESPACE}/gateway"
CONTROLLER = f"{NAMESPACE}/controller"
SCHEDULERS = f"{NAMESPACE}/schedulers"
WORKERS = f"{NAMESPACE}/workers"
CACHE = "cache/xcache"
CACHE_PORT = 1094
PROMETHEUS = "monitoring/prometheus"
CONDOR_WORKERS = "condor/workers"
KUBE_API = "kubernetes/apiserver"
KUBE_API_PORT = 6443


class Flow(NamedTuple):
    source: str
    destination: str
    port: int
    why: str


def flows(cfg: FacilityConfig) -> list[Flow]:
    """What must be allowed when the gateway is deployed."""
    if not cfg.dask.enabled:
        return []
    declared = [
        Flow(NOTEBOOKS, TRAEFIK, TRAEFIK_PORT, "the gateway's API, and Dask's TLS to the schedulers (SNI-routed)"),
        Flow(PROXY, TRAEFIK, TRAEFIK_PORT, "dashboards: the hub's proxy forwards /services/dask-gateway/"),
        Flow(TRAEFIK, GATEWAY, API_PORT, "API requests"),
        Flow(TRAEFIK, SCHEDULERS, SCHEDULER_PORT, "clients' Dask connections"),
        Flow(TRAEFIK, SCHEDULERS, DASHBOARD_PORT, "dashboards"),
        Flow(GATEWAY, HUB, HUB_PORT, "checking users' tokens and groups with the hub"),
        Flow(HUB, TRAEFIK, TRAEFIK_PORT, "stopping a stopped server's clusters"),
        Flow(GATEWAY, SCHEDULERS, 8788, "the gateway's scheduler API (scale, adapt)"),
        Flow(SCHEDULERS, GATEWAY, API_PORT, "schedulers' heartbeats to the gateway"),
        Flow(WORKERS, SCHEDULERS, SCHEDULER_PORT, "workers join their scheduler"),
        Flow(SCHEDULERS, WORKERS, 0, "the scheduler reaches workers on their ephemeral ports"),
        Flow(WORKERS, WORKERS, 0, "workers exchange data on their ephemeral ports"),
        Flow(GATEWAY, KUBE_API, KUBE_API_PORT, "watching clusters"),
        Flow(CONTROLLER, KUBE_API, KUBE_API_PORT, "creating schedulers, workers, Secrets, Services"),
        Flow(TRAEFIK, KUBE_API, KUBE_API_PORT, "reading its routes"),
    ]
    if cfg.cache.enabled:
        declared.append(
            Flow(WORKERS, CACHE, CACHE_PORT, "workers read root:// through the cache with the user's token")
        )
    if cfg.monitoring.enabled:
        declared.append(Flow(PROMETHEUS, SCHEDULERS, DASHBOARD_PORT, "scheduler metrics (/metrics)"))
        declared.append(Flow(PROMETHEUS, WORKERS, DASHBOARD_PORT, "worker metrics (/metrics)"))
    if cfg.condor.enabled and cfg.dask.jobqueue:
        declared.append(Flow(CONDOR_WORKERS, NOTEBOOKS, 0, "HTCondorCluster workers join the notebook's scheduler"))
        declared.append(Flow(NOTEBOOKS, CONDOR_WORKERS, 0, "the notebook's scheduler reaches its HTCondor workers"))
    return declared
