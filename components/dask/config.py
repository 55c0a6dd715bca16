"""`af:dask`: Dask Gateway, where its schedulers and workers run, how long clusters live, and
what each IAM group may use.

Limits are declared per IAM group, by the group's name as the hub knows it (the `wlcg.groups`
claim, e.g. `/cms`), and every group named must be one `af:identity.roles` declares: limits sit
beside the roles, they do not invent new groups. A user in several groups gets, for each limit,
the largest of their groups' values; a user in none of them gets no cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, StrictBool, model_validator

from ..config.base import PinnedImage, StrictModel
from ..config.identity import GroupName
from ..names import NodeRole

if TYPE_CHECKING:
    from ..config.facility import FacilityConfig
    from ..infra.config import NodeGroup

CHART_VERSION = "2026.3.0"
"""The `dask-gateway` chart release, the same as the `dask-gateway-server` PyPI release the
tests run (pyproject's dev extras)."""


class Size(StrictModel):
    """CPU and memory of one pod."""

    cores: PositiveFloat
    """CPU cores (request and limit)."""
    memory_gib: PositiveFloat
    """Memory in GiB (request and limit)."""


class Worker(StrictModel):
    """What a worker may be: users pick a size between the default and the maximum."""

    cores: PositiveFloat = 1
    """Cores of a worker when the user asks for nothing else; also its threads (rounded up)."""
    memory_gib: PositiveFloat = 4
    """Memory of a worker, in GiB, when the user asks for nothing else."""
    max_cores: PositiveFloat = 4
    """The most cores a user may give one worker; a worker must fit a node of the workers' groups."""
    max_memory_gib: PositiveFloat = 12
    """The most memory, in GiB, a user may give one worker."""
    max_gpus: NonNegativeInt = 1
    """GPUs a worker of a member of `af:identity.roles.gpu` may ask for (placed on GPU node groups
    with the workers' role); 0 turns GPU workers off."""

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> Worker:
        if self.cores > self.max_cores or self.memory_gib > self.max_memory_gib:
            raise ValueError("a default worker size within maxCores and maxMemoryGib")
        return self


class Placement(StrictModel):
    """Node roles (`af:cluster.nodeGroups.*.roles`) the gateway's pods are placed on."""

    schedulers: NodeRole = "interactive"
    """Role of the nodes running schedulers: small, long-lived, talked to by notebooks."""
    workers: NodeRole = "dask"
    """Role of the nodes running workers. `dask` keeps them off the notebooks' and the batch
    pool's nodes unless a group declares both roles."""


class GroupLimits(StrictModel):
    """What members of one IAM group may use. Cores and memory count a cluster's scheduler and
    all its workers."""

    cores: PositiveFloat
    """Cores of one cluster, at most."""
    memory_gib: PositiveFloat
    """Memory of one cluster, in GiB, at most."""
    workers_per_cluster: PositiveInt
    """Workers of one cluster, at most."""
    clusters_per_user: PositiveInt
    """Clusters a user may have running or starting at once."""


class Dask(StrictModel):
    """Dask Gateway (the official `dask-gateway` chart and image) in the namespace `dask`,
    authenticated through the hub: notebooks get clusters on the facility's nodes, in the
    notebook's image, within their IAM groups' limits."""

    enabled: StrictBool = False
    """Deploy the gateway."""
    chart_version: str = Field(default=CHART_VERSION, pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    """Pinned `dask-gateway` chart version (https://helm.dask.org)."""
    gateway_image: PinnedImage = f"ghcr.io/dask/dask-gateway-server:{CHART_VERSION}"
    """Image of the gateway's API server and controller, the chart's own at its version."""
    placement: Placement = Field(default_factory=Placement)
    """Where schedulers and workers run."""
    scheduler: Size = Field(default_factory=lambda: Size.model_validate({"cores": 1, "memoryGib": 2}))
    """Size of every cluster's scheduler."""
    worker: Worker = Field(default_factory=Worker)
    """Default and largest worker."""
    idle_timeout_minutes: PositiveFloat = 30
    """A cluster with no client and no work for this long is shut down."""
    max_lifetime_hours: PositiveFloat = 24
    """Every cluster is shut down this long after it started, idle or not."""
    limits: dict[GroupName, GroupLimits] = Field(default_factory=dict)
    """Limits per IAM group (a group of `af:identity.roles`); only members of these groups get
    clusters."""
    jobqueue: StrictBool = True
    """Give notebooks a `dask-jobqueue` configuration for `HTCondorCluster()` on the facility's
    pool (with `af:condor.enabled`)."""
    jobqueue_python: str = Field(default="python3", pattern=r"^[A-Za-z0-9_./+-]+$")
    """The Python `HTCondorCluster` workers run on the pool's nodes: it needs the notebook's
    `distributed` (the pool's worker image, or an environment under /cvmfs)."""


def worker_groups(cfg: FacilityConfig, gpu: bool) -> dict[str, NodeGroup]:
    """The groups CPU (or GPU) workers run on."""
    return {n: g for n, g in cfg.cluster.groups_with(cfg.dask.placement.workers).items() if (g.gpu is not None) == gpu}
