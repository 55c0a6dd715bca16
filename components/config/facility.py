"""The whole stack config, assembled from the layers' sections."""

from __future__ import annotations

from pydantic import Field

from ..batch.config import Autoscaler, Condor
from ..cache.config import Cache
from ..certs.config import CertManager
from ..cvmfs.config import Cvmfs
from ..dask.config import Dask
from ..gpu.config import Gpu
from ..hub.config import Hub
from ..infra.config import Cluster, Site
from ..monitoring.config import Monitoring
from ..offload.config import Offload
from .base import StrictModel
from .identity import Identity
from .policy import PolicySettings


class FacilityConfig(StrictModel):
    """Everything a facility is: the `af:*` keys of a stack, after profiles are merged."""

    profiles: list[str] = Field(default_factory=list)
    """Profiles from `stacks/` merged in order below the stack's own values."""
    site: Site
    """The OpenStack site."""
    cluster: Cluster
    """The Kubernetes cluster."""
    gpu: Gpu = Field(default_factory=Gpu)
    """The NVIDIA device plugin for the node groups with GPUs."""
    identity: Identity | None = None
    """The OIDC provider; required by the hub, HTCondor user auth and cache token auth."""
    hub: Hub = Field(default_factory=Hub)
    """JupyterHub."""
    cert_manager: CertManager = Field(default_factory=CertManager)
    """cert-manager, for the hub's and in-cluster services' certificates."""
    cvmfs: Cvmfs = Field(default_factory=Cvmfs)
    """CVMFS."""
    cache: Cache = Field(default_factory=Cache)
    """XCache."""
    condor: Condor = Field(default_factory=Condor)
    """HTCondor pool."""
    autoscaler: Autoscaler = Field(default_factory=Autoscaler)
    """Worker autoscaler."""
    offload: Offload = Field(default_factory=Offload)
    """HPC offload gateways."""
    policy: PolicySettings = Field(default_factory=PolicySettings)
    """Inputs of the policy pack: production or not, enforcement levels, public ports."""
    monitoring: Monitoring = Field(default_factory=Monitoring)
    """Prometheus, Grafana and the facility's dashboards."""
    dask: Dask = Field(default_factory=Dask)
    """Dask Gateway: Dask clusters from the notebook, limited by IAM group."""
