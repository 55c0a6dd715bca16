"""The network flows the Dask layer needs, as data for the facility's flow declaration (its
NetworkPolicies and `afctl graph`). The shape follows the declaration's: an endpoint is the pods of
a namespace selected by labels (every pod of it when `pods` is empty); a flow is a source, a
target, the target pods' ports (every port when empty) and why.

Pod labels and ports are the chart's and the Kubernetes backend's (dask-gateway 2026.3.0): the
chart labels its pods `app.kubernetes.io/component` `gateway` (API, port 8000), `traefik` (the
proxy, web port 8000 behind the Service's port 80) and `controller`
(`templates/{gateway,traefik,controller}/deployment.yaml`); the backend labels clusters' pods
`dask-scheduler` (8786 Dask, 8787 dashboard, 8788 the gateway's API) and `dask-worker` (8787
dashboard; Dask's own port is ephemeral) (`backends/kubernetes/controller.py`, `make_pod`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ..config.facility import FacilityConfig
from .gateway import API_PORT, DASHBOARD_PORT, NAMESPACE, SCHEDULER_PORT

COMPONENT = "app.kubernetes.io/component"
TRAEFIK_POD_PORT = 8000
"""Traefik's `web` entrypoint, what the Service's port 80 (HTTP and Dask's TLS) reaches."""
SCHEDULER_API_PORT = 8788
HUB_PORT = 8081
CACHE_PORT = 1094
KUBE_API_PORT = 6443


class Endpoint(NamedTuple):
    name: str
    namespace: str | None
    pods: Mapping[str, str] = {}


class Flow(NamedTuple):
    source: Endpoint
    target: Endpoint
    ports: tuple[int, ...]
    what: str


def _dask(name: str, component: str) -> Endpoint:
    return Endpoint(name, NAMESPACE, {COMPONENT: component})


TRAEFIK = _dask("dask gateway proxy", "traefik")
GATEWAY = _dask("dask gateway", "gateway")
CONTROLLER = _dask("dask controller", "controller")
SCHEDULERS = _dask("dask schedulers", "dask-scheduler")
WORKERS = _dask("dask workers", "dask-worker")
# Other layers' pods, as z2jh, the cache and the monitoring stack label them.
NOTEBOOKS = Endpoint("notebooks", "jupyterhub", {"component": "singleuser-server"})
HUB = Endpoint("hub", "jupyterhub", {"component": "hub"})
PROXY = Endpoint("proxy", "jupyterhub", {"component": "proxy"})
CACHE = Endpoint("cache", "xcache", {"app.kubernetes.io/name": "af-xcache"})
PROMETHEUS = Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
CONDOR_WORKERS = Endpoint("batch workers", "condor", {"app.kubernetes.io/name": "af-condor-worker"})
KUBE_API = Endpoint("Kubernetes API", None)


def flows(cfg: FacilityConfig) -> list[Flow]:
    """What must be allowed when the gateway is deployed."""
    if not cfg.dask.enabled:
        return []
    declared = [
        Flow(NOTEBOOKS, TRAEFIK, (TRAEFIK_POD_PORT,), "the gateway's API, and Dask's TLS to schedulers (SNI-routed)"),
        Flow(PROXY, TRAEFIK, (TRAEFIK_POD_PORT,), "dashboards: the hub's proxy forwards /services/dask-gateway/"),
        Flow(HUB, TRAEFIK, (TRAEFIK_POD_PORT,), "stopping a stopped server's clusters"),
        Flow(TRAEFIK, GATEWAY, (API_PORT,), "API requests"),
        Flow(TRAEFIK, SCHEDULERS, (SCHEDULER_PORT, DASHBOARD_PORT), "clients' Dask connections, dashboards"),
        Flow(GATEWAY, HUB, (HUB_PORT,), "checking users' tokens and groups with the hub"),
        Flow(GATEWAY, SCHEDULERS, (SCHEDULER_API_PORT,), "the gateway's scheduler API (scale, adapt)"),
        Flow(SCHEDULERS, GATEWAY, (API_PORT,), "schedulers' heartbeats"),
        Flow(WORKERS, SCHEDULERS, (SCHEDULER_PORT,), "workers join their scheduler"),
        Flow(SCHEDULERS, WORKERS, (), "the scheduler reaches workers on their ephemeral ports"),
        Flow(WORKERS, WORKERS, (), "workers exchange data on their ephemeral ports"),
        Flow(GATEWAY, KUBE_API, (KUBE_API_PORT,), "watching clusters"),
        Flow(CONTROLLER, KUBE_API, (KUBE_API_PORT,), "creating schedulers, workers, Secrets, Services"),
        Flow(TRAEFIK, KUBE_API, (KUBE_API_PORT,), "reading its routes"),
    ]
    if cfg.cache.enabled:
        declared.append(Flow(WORKERS, CACHE, (CACHE_PORT,), "workers read root:// through the cache, user's token"))
    if cfg.monitoring.enabled:
        declared.append(Flow(PROMETHEUS, SCHEDULERS, (DASHBOARD_PORT,), "scheduler metrics (/metrics)"))
        declared.append(Flow(PROMETHEUS, WORKERS, (DASHBOARD_PORT,), "worker metrics (/metrics)"))
    if cfg.condor.enabled and cfg.dask.jobqueue:
        declared.append(Flow(CONDOR_WORKERS, NOTEBOOKS, (), "HTCondorCluster workers join the notebook's scheduler"))
        declared.append(Flow(NOTEBOOKS, CONDOR_WORKERS, (), "the notebook's scheduler reaches its HTCondor workers"))
    return declared
