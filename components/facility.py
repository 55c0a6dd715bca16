"""The whole facility: one component per layer, wired together. This is where layers meet: each
gets its own section of the config and, from the others, only what it uses."""

from __future__ import annotations

from functools import partial

import pulumi
import pulumi_openstack as openstack

from .batch.autoscaler import Autoscaler
from .batch.pods import pool_client
from .batch.pool import Condor
from .cache.client import client_env as cache_client_env
from .cache.client import client_files as cache_client_files
from .cache.client import node_cache_url
from .cache.component import XCache
from .cache.config import node_cache_groups, notebooks_read_node_caches
from .certs.component import CertManager
from .common.layers import ServiceClient
from .config.facility import FacilityConfig
from .cvmfs.component import Cvmfs
from .dask.component import Dask
from .dask.gateway import ClusterSite
from .dask.hub import apply_hub_values as dask_hub_values
from .flows.component import NetworkPolicies
from .flows.declaration import facility_flows, user_code
from .flows.policies import network_policies
from .gpu.component import DevicePlugin
from .gpu.config import deploys_device_plugin, gpu_groups
from .hub.component import Hub
from .hub.values import HubSite
from .infra.cluster import Cluster
from .infra.labeller import NodeLabeller
from .infra.network import Network
from .monitoring.component import Monitoring
from .names import (
    CACHE_NAMESPACE,
    CONDOR_NAMESPACE,
    CVMFS_NAMESPACE,
    DASK_NAMESPACE,
    HUB_NAMESPACE,
    MONITORING_NAMESPACE,
)
from .offload.component import Offload


def needs_certificates(cfg: FacilityConfig) -> bool:
    """cert-manager issues the hub's public certificate (ACME) and the internal CA's."""
    return (cfg.hub.enabled and cfg.hub.tls.mode == "cert-manager") or cfg.cache.enabled or cfg.condor.enabled


def cache_client(cfg: FacilityConfig) -> ServiceClient | None:
    """What jobs need to read through the cache, when there is one: on the nodes of groups with node caches, their
    own node's cache (worker groups are node groups)."""
    if not cfg.cache.enabled:
        return None
    node_env = cache_client_env(node_cache_url())
    return ServiceClient(
        env=cache_client_env(),
        files=cache_client_files(),
        group_env={group: node_env for group in node_cache_groups(cfg.cache, cfg.cluster)},
    )


def notebook_cache_client(cfg: FacilityConfig) -> ServiceClient | None:
    """What notebooks need to read through the cache: their node's cache when every node that runs notebooks has one
    (a notebook's node is known only once it is scheduled), else the site cache."""
    client = cache_client(cfg)
    if client is None or not notebooks_read_node_caches(cfg.cache, cfg.cluster):
        return client
    return ServiceClient(env=cache_client_env(node_cache_url()), files=client.files)


def hub_site(cfg: FacilityConfig) -> HubSite:
    """What the hub's values need from the other layers: where the hub is reached, whether /cvmfs
    is mounted, the cache's and the pool's clients; both services speak TLS with certificates
    of the internal CA."""
    env: dict[str, str] = {}
    files: dict[str, str] = {}
    clients = [notebook_cache_client(cfg), pool_client(cfg) if cfg.condor.enabled else None]
    for client in filter(None, clients):
        env |= client.env
        files |= client.files
    host = cfg.hub.host or cfg.site.dns_name
    return HubSite(
        host=host,
        cvmfs=cfg.cvmfs.enabled,
        extra_env=tuple(sorted(env.items())),
        extra_files=tuple(sorted(files.items())),
        trust_internal_ca=cfg.cache.enabled or cfg.condor.enabled,
        extensions=(partial(dask_hub_values, cfg=cfg, host=host),) if cfg.dask.enabled else (),
    )


class Facility(pulumi.ComponentResource):
    """Infrastructure (network, VMs, Kubernetes) and, above it, the platform layers.
    `k8s_provider` is what every layer deploys with."""

    cluster: Cluster
    kubeconfig: pulumi.Output[str]
    api_endpoint: pulumi.Output[str]
    ingress_address: pulumi.Output[str]
    cvmfs: Cvmfs | None
    gpu: DevicePlugin | None
    hub: Hub | None
    cache: XCache | None
    condor: Condor | None
    offload: Offload | None
    dask: Dask | None
    hub_url: str | None

    def __init__(self, name: str, cfg: FacilityConfig, stack: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("af:index:Facility", name, None, opts)
        prefix = f"af-{stack}"
        layer = pulumi.ResourceOptions(parent=self)
        network = None
        openstack_provider = None
        if cfg.cluster.mode != "existing":
            # Credentials come from the operator's environment (OS_CLOUD or OS_* variables).
            openstack_provider = openstack.Provider(f"{name}-openstack", region=cfg.site.region, opts=layer)
            # k3s's traefik serves the hub on the control plane: HTTP for ACME and the redirect.
            http = cfg.hub.enabled and cfg.cluster.mode == "openstack"
            network = Network(
                f"{name}-network", cfg.site, cfg.offload, prefix, openstack_provider, opts=layer, http=http
            )
        self.cluster = Cluster(
            f"{name}-cluster", cfg.site, cfg.cluster, prefix, openstack_provider, network, opts=layer
        )
        self.k8s_provider = provider = self.cluster.provider
        if cfg.cluster.mode == "magnum":
            NodeLabeller(f"{name}-node-labeller", cfg.cluster, provider, layer)
        self.kubeconfig = self.cluster.kubeconfig
        self.api_endpoint = self.cluster.api_endpoint
        self.ingress_address = self.cluster.ingress_address

        certs = CertManager(f"{name}-certs", cfg.cert_manager, provider, layer) if needs_certificates(cfg) else None
        self.cvmfs = None
        if cfg.cvmfs.enabled:
            squid_clients = [cfg.cluster.pod_cidr, cfg.site.node_cidr]
            gpu_nodes = bool(gpu_groups(cfg.cluster))
            self.cvmfs = Cvmfs(f"{name}-cvmfs", cfg.cvmfs, squid_clients, gpu_nodes, provider, layer)
        gpu = deploys_device_plugin(cfg.gpu, cfg.cluster)
        self.gpu = DevicePlugin(f"{name}-gpu", cfg.gpu, cfg.cluster, provider, layer) if gpu else None
        self.cache = None
        if cfg.cache.enabled:
            assert certs is not None
            self.cache = XCache(f"{name}-cache", cfg, provider, certs, layer)
        self.condor = None
        if cfg.condor.enabled:
            assert certs is not None
            self.condor = Condor(f"{name}-condor", cfg, provider, certs, self.cvmfs, cache_client(cfg), layer)
            if cfg.autoscaler.enabled:
                Autoscaler(f"{name}-autoscaler", cfg, provider, self.condor, layer)
        self.offload = None
        if cfg.offload.gateways:
            self.offload = Offload(f"{name}-offload", cfg.offload, cfg.identity, provider, layer)
        monitoring = Monitoring(f"{name}-monitoring", cfg, provider, layer) if cfg.monitoring.enabled else None
        self.dask = None
        if cfg.dask.enabled:
            # Clusters run in the notebooks' environment: their image, files, CA and /cvmfs.
            nb = hub_site(cfg)
            site = ClusterSite(nb.extra_env, nb.extra_files, nb.trust_internal_ca, nb.cvmfs, (cfg.hub.notebook_image,))
            self.dask = Dask(f"{name}-dask", cfg, provider, site, certs, self.cvmfs, layer)
        self.hub = None
        if cfg.hub.enabled:
            self.hub = Hub(f"{name}-hub", cfg, hub_site(cfg), provider, self.cvmfs, certs, layer, dask=self.dask)
        self.hub_url = self.hub.url if self.hub else None
        namespaces = {
            HUB_NAMESPACE: self.hub,
            CACHE_NAMESPACE: self.cache,
            CONDOR_NAMESPACE: self.condor,
            MONITORING_NAMESPACE: monitoring,
            CVMFS_NAMESPACE: self.cvmfs,
            DASK_NAMESPACE: self.dask,
        }
        deployed = {ns: layer_.namespace for ns, layer_ in namespaces.items() if layer_ is not None}
        policies = network_policies(facility_flows(cfg), deployed, user_code(cfg))
        NetworkPolicies(f"{name}-network-policies", policies, deployed, provider, layer)
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "apiEndpoint": self.api_endpoint,
                "ingressAddress": self.ingress_address,
                "hubUrl": self.hub_url,
            }
        )
