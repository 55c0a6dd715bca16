"""The whole facility: one component per layer, wired together."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from .autoscaler import Autoscaler
from .certs import CertManager
from .certs import needed as certs_needed
from .cluster import Cluster
from .condor import Condor
from .config import FacilityConfig
from .config.gpu import deploys_device_plugin
from .cvmfs import Cvmfs
from .dask.component import Dask
from .dask.gateway import ClusterSite
from .gpu import DevicePlugin
from .hub import Hub, hub_site
from .monitoring import Monitoring
from .network import Network
from .offload import Offload
from .xcache import XCache


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
        network = None
        openstack_provider = None
        if cfg.cluster.mode != "existing":
            # Credentials come from the operator's environment (OS_CLOUD or OS_* variables).
            openstack_provider = openstack.Provider(
                f"{name}-openstack", region=cfg.site.region, opts=pulumi.ResourceOptions(parent=self)
            )
            network = Network(
                f"{name}-network",
                cfg.site,
                cfg.offload,
                prefix,
                openstack_provider,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.cluster = Cluster(
            f"{name}-cluster", cfg, prefix, openstack_provider, network, opts=pulumi.ResourceOptions(parent=self)
        )
        self.k8s_provider = self.cluster.provider
        self.kubeconfig = self.cluster.kubeconfig
        self.api_endpoint = self.cluster.api_endpoint
        self.ingress_address = self.cluster.ingress_address
        layer = pulumi.ResourceOptions(parent=self)
        provider = self.k8s_provider
        certs = CertManager(f"{name}-certs", cfg, provider, layer) if certs_needed(cfg) else None
        self.cvmfs = Cvmfs(f"{name}-cvmfs", cfg, provider, layer) if cfg.cvmfs.enabled else None
        gpu = deploys_device_plugin(cfg.gpu, cfg.cluster)
        self.gpu = DevicePlugin(f"{name}-gpu", cfg, provider, layer) if gpu else None
        self.cache = None
        if cfg.cache.enabled:
            assert certs is not None
            self.cache = XCache(f"{name}-cache", cfg, provider, certs, layer)
        self.condor = None
        if cfg.condor.enabled:
            assert certs is not None
            self.condor = Condor(f"{name}-condor", cfg, provider, certs, self.cvmfs, layer)
            if cfg.autoscaler.enabled:
                Autoscaler(f"{name}-autoscaler", cfg, provider, self.condor, layer)
        self.offload = Offload(f"{name}-offload", cfg, provider, layer) if cfg.offload.gateways else None
        if cfg.monitoring.enabled:
            Monitoring(f"{name}-monitoring", cfg, provider, layer)
        self.dask = None
        if cfg.dask.enabled:
            # Clusters run in the notebooks' environment: their image, files, CA and /cvmfs.
            nb = hub_site(cfg)
            site = ClusterSite(nb.extra_env, nb.extra_files, nb.trust_internal_ca, nb.cvmfs, (cfg.hub.notebook_image,))
            self.dask = Dask(f"{name}-dask", cfg, provider, site, certs, self.cvmfs, layer)
        self.hub = (
            Hub(f"{name}-hub", cfg, provider, self.cvmfs, certs, layer, dask=self.dask) if cfg.hub.enabled else None
        )
        self.hub_url = self.hub.url if self.hub else None
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "apiEndpoint": self.api_endpoint,
                "ingressAddress": self.ingress_address,
                "hubUrl": self.hub_url,
            }
        )
