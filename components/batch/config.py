"""Config of the batch layer (`af:condor`): the HTCondor pool on Kubernetes, and what its
worker groups are: one per node group with role `batch`, each worker a partitionable slot sized
to a node of the group."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import classad2
from pydantic import Field, NonNegativeInt, PositiveInt, StrictBool, field_validator

from ..config.base import DnsLabel, PinnedImage, StrictModel
from ..config.identity import WLCG_ANY_AUDIENCE
from ..infra.config import NODE_MEMORY_FRACTION, SYSTEM_RESERVE_CORES, Cluster, Flavor, NodeGroup
from ..names import CONTROL_PLANE_GROUP, WANT_OFFLOAD
from ..offload.config import OFFLOAD_PREFERENCE, Gateway, Offload

DAEMON_MEMORY_MIB = 1024
"""Memory of a worker pod kept for HTCondor's own daemons (master, startd, starters)."""
GPU_START = "TARGET.RequestGpus > 0"
"""Jobs that ask for GPUs: the only ones a GPU group's START admits on a free GPU's share."""


def gpu_start(cpus_per_gpu: float, memory_mib_per_gpu: float) -> str:
    """Default START of a GPU group: jobs that ask for GPUs, and other jobs only in the room a
    worker has beyond what it keeps for each of its unclaimed GPUs (`cpus_per_gpu` cores and
    `memory_mib_per_gpu` MiB each). In a partitionable slot's ad Cpus, Memory and GPUs are what
    is left unclaimed; the negotiator matches that ad and the startd checks the slot's START
    again for every claim of its leftovers, so a GPU job always finds its share next to a free
    GPU, and the cores GPU jobs leave idle take CPU work (after the CPU groups, by preference)."""
    return (
        f"(TARGET.RequestGpus ?: 0) > 0 || (MY.Cpus - TARGET.RequestCpus >= {cpus_per_gpu:g} * MY.GPUs && "
        f"MY.Memory - TARGET.RequestMemory >= {memory_mib_per_gpu:g} * MY.GPUs)"
    )


CPU_PREFERENCE, GPU_PREFERENCE = 0, 10
"""Default preferences: CPU groups are tried before GPU groups (offload groups come last)."""
RETIRE_MARGIN_MINUTES = 10
"""An offloaded worker stops taking jobs this long before its Slurm job's wall time ends."""
ROLE_RESERVE: dict[str, tuple[float, float]] = {
    "server": (1.5, 3.0),
    "system": (2.5, 8.0),
    "interactive": (2.0, 12.0),
    "cache": (1.0, 6.0),
    "dask": (3.5, 11.0),
}
"""Cores and GiB a worker leaves on its node, besides the half core and 10% of RAM every node keeps:
to k3s's server on the control plane (API server, controllers, scheduler, its datastore, traefik,
CoreDNS, metrics-server, local-path; k3s asks 2 cores and 2 GB for a server that also runs
workloads) and to what the node's other roles run there, by their requests in the shipped `single`
stack: `system` the facility's services (hub, proxy, Prometheus and Grafana, cert-manager, the
pool's central manager, schedd and autoscaler, CVMFS: 2.5 cores and 6.3 GiB), `interactive` a
notebook of the hub's largest default profile (1.5 cores and 11.2 GiB), `cache` the cache server
and its sidecars (0.5 cores and 5 GiB with the default 4g `ram`), `dask` the gateway's API, controller
and proxy (0.3 cores, 0.6 GiB) and one Dask cluster of its default sizes (a scheduler of 1 core
and 2 GiB, two workers of 1 core and 4 GiB). The worker takes what is left;
`af:condor.groups.<group>.cpus`/`memoryGib` size it otherwise."""
SERVICE_ROLES = ("system", "cache")
"""Roles whose pods run all the time: a node group that also has one of them keeps their reserve on
every node, since the scheduler spreads them over the group. Notebooks and Dask workers come and
go: on a node group they take the nodes no worker holds, and idle workers make room (the
autoscaler scales them in); on the one control plane there is no other node, so it keeps their
room too."""
Role = Literal["cm", "submit", "execute"]


def classad_expression(text: str) -> str:
    """`text` if classad2 parses it as an expression; the contract's ValueError otherwise."""
    try:
        classad2.ExprTree(text)
    except Exception:
        raise ValueError(f"a ClassAd expression such as {GPU_START!r} (classad2 cannot parse {text!r})") from None
    return text


class GpuReserve(StrictModel):
    """Room of a GPU worker kept for GPU jobs next to each of its unclaimed GPUs."""

    cpus: float = Field(ge=0)
    """Cores kept for each unclaimed GPU."""
    memory_gib: float = Field(ge=0)
    """Memory kept for each unclaimed GPU, in GiB."""


class WorkerGroupConfig(StrictModel):
    """Settings of one worker group, by the name of its node group (a group with role `batch`)
    or of its offload gateway."""

    min_workers: NonNegativeInt = 0
    """Workers kept even when idle (the Deployment's replicas; the autoscaler scales from there)."""
    max_workers: NonNegativeInt | None = None
    """Most workers the group may have; by default one per node of the node group, or what the
    gateway's limits and resources allow."""
    start: str | None = None
    """START expression of the group's slots (ClassAd). Default: `True`; on GPU groups, jobs
    that request GPUs, and other jobs only in the room beyond `gpuReserve` for each unclaimed
    GPU (the cores GPU jobs leave idle run CPU work; a GPU job always finds its share). On an
    offload group it narrows the gateway's own START (opt-in, allowed groups, wall time)."""
    gpu_reserve: GpuReserve | None = None
    """On a GPU group with the default START: the cores and memory kept free for each unclaimed
    GPU. Default: the worker's share per GPU (its cores and memory divided by its GPUs), so jobs
    that request no GPU only use what running GPU jobs leave. A smaller reserve lets them use
    more of an idle GPU worker, and GPU jobs larger than it wait for them to end."""
    preference: NonNegativeInt | None = None
    """Order in which groups are tried for a job both can run: lower first. Default: 0 for CPU
    groups, 10 for GPU groups (CPU jobs prefer CPU groups), 100 for offload groups."""
    cpus: float | None = Field(default=None, ge=1)
    """Cores of each worker pod; by default the node's vCPUs less half a core and the room of
    the services the node also runs (roles `system`, `cache`; on the control plane k3s and every
    other role). Required in cluster mode `existing`, where flavors are unknown."""
    memory_gib: float | None = Field(default=None, ge=2)
    """Memory of each worker pod, in GiB; by default 90% of the node's RAM less the room of the
    services the node also runs, as for `cpus`. Required in cluster mode `existing`."""

    @field_validator("start")
    @classmethod
    def _start(cls, value: str | None) -> str | None:
        return None if value is None else classad_expression(value)


class CondorImages(StrictModel):
    """Container images of the pool's daemons; each defaults to the official
    `docker.io/htcondor/<role>:<imageTag>`."""

    cm: PinnedImage | None = None
    """Central manager (collector and negotiator)."""
    submit: PinnedImage | None = None
    """Access point (schedd)."""
    execute: PinnedImage | None = None
    """Workers (startd); a site may extend the official image with its experiment's software."""


class Condor(StrictModel):
    """The HTCondor pool on Kubernetes: a central manager, one schedd with its spool on a
    persistent volume, and one group of workers per node group with role `batch`. Daemons
    authenticate each other with IDTOKENS from a generated pool signing key; users submit
    with their IAM token (SciTokens), if they are in a group of `af:identity.roles.batch`."""

    enabled: StrictBool = False
    """Deploy the pool."""
    image_tag: str = Field(default="24.0.7-el9", pattern=r"^\d+\.\d+\.\d+-el\d+$")
    """Tag of the official htcondor/cm, htcondor/submit and htcondor/execute images (an LTS
    release on Enterprise Linux)."""
    images: CondorImages = Field(default_factory=CondorImages)
    """Per-role images replacing the official ones."""
    idle_shutdown_minutes: PositiveInt = 20
    """Minutes an unclaimed worker waits before its startd exits (`STARTD_NOCLAIM_SHUTDOWN`)."""
    retire_grace_minutes: int = Field(default=60, ge=1, le=10080)
    """How long a running job may keep running on a worker being removed
    (`MaxJobRetirementTime`; the pod's termination grace adds a little more)."""
    spool_gib: PositiveInt = 50
    """Size of the schedd's spool volume (the job queue and spooled sandboxes), in GiB."""
    storage_class: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Storage class of the spool volumes; the cluster default when unset."""
    negotiator_interval_seconds: int = Field(default=20, ge=10, le=600)
    """Seconds between negotiation cycles (`NEGOTIATOR_INTERVAL`): the shortest wait for a match.
    HTCondor's own default is 60 s, for pools of thousands of slots; a facility's pool negotiates
    in well under a second, and the autoscaler's figures (`benchmarks/sim_autoscaler.py`) assume
    this default."""
    audiences: list[str] = Field(default_factory=lambda: [WLCG_ANY_AUDIENCE], min_length=1)
    """Token audiences the pool accepts from users (`SCITOKENS_SERVER_AUDIENCE`)."""
    groups: dict[DnsLabel, WorkerGroupConfig] = Field(default_factory=dict)
    """Per worker group settings, by node group name; groups not listed use the defaults."""

    def image(self, role: Role) -> str:
        """The image of a role: the override, or the official image at `imageTag`."""
        return getattr(self.images, role) or f"docker.io/htcondor/{role}:{self.image_tag}"


@dataclass(frozen=True)
class WorkerGroup:
    """A worker group as deployed: the pod's size on the node and the slot it advertises.
    Sizes are None when they cannot be known (mode `existing` without explicit sizes).
    A group runs either on a node group of the cluster or on an offload gateway's virtual node."""

    name: str
    node_group: NodeGroup | None
    pod_cpus: float | None
    pod_memory_mib: int | None
    gpus: int
    min_workers: int
    max_workers: int
    start: str
    preference: int
    gateway: Gateway | None = None

    @property
    def local(self) -> bool:
        """Runs in the cluster (and counts against the site's quota)."""
        return self.gateway is None

    @property
    def reserve(self) -> tuple[float, float]:
        """Cores and GiB its workers leave on their node to what else runs there (none offloaded)."""
        if self.node_group is None:
            return 0.0, 0.0
        return worker_reserve(self.node_group.roles, self.name == CONTROL_PLANE_GROUP)

    @property
    def slot_cpus(self) -> int | None:
        """Cores the partitionable slot advertises: whole cores of the pod."""
        return None if self.pod_cpus is None else max(1, math.floor(self.pod_cpus))

    @property
    def slot_memory_mib(self) -> int | None:
        """Memory the slot advertises: the pod's, less what the daemons need."""
        return None if self.pod_memory_mib is None else self.pod_memory_mib - DAEMON_MEMORY_MIB


def worker_reserve(roles: list[str], control_plane: bool) -> tuple[float, float]:
    """Cores and GiB a worker leaves on a node with `roles` to what else runs there: on the
    control plane k3s's server and every other role, on a node group its services."""
    if control_plane:
        kept = ["server", *(r for r in roles if r != "batch" and r in ROLE_RESERVE)]
    else:
        kept = [r for r in roles if r in SERVICE_ROLES]
    return sum(ROLE_RESERVE[k][0] for k in kept), sum(ROLE_RESERVE[k][1] for k in kept)


def worker_groups(
    condor: Condor, cluster: Cluster, flavors: Mapping[str, Flavor], offload: Offload | None = None
) -> dict[str, WorkerGroup]:
    """The control plane when it has role `batch`, every node group with role `batch` in name
    order, then every offload gateway."""
    found: dict[str, WorkerGroup] = {}
    for name, group in cluster.groups_with("batch").items():
        settings = condor.groups.get(name) or WorkerGroupConfig()
        flavor = flavors.get(group.flavor) if cluster.mode != "existing" else None
        keep_cores, keep_gib = worker_reserve(group.roles, name == CONTROL_PLANE_GROUP)
        cpus = settings.cpus
        if cpus is None and flavor is not None:
            cpus = flavor.vcpus - SYSTEM_RESERVE_CORES - keep_cores
        memory_gib = settings.memory_gib
        if memory_gib is None and flavor is not None:
            memory_gib = flavor.ram_gib * NODE_MEMORY_FRACTION - keep_gib
        gpu = group.gpu is not None
        gpus = group.gpu.schedulable if group.gpu else 0
        start = settings.start or "True"
        if gpu and settings.start is None:
            start = _default_gpu_start(settings.gpu_reserve, cpus, memory_gib, gpus)
        found[name] = WorkerGroup(
            name=name,
            node_group=group,
            pod_cpus=cpus,
            pod_memory_mib=None if memory_gib is None else math.floor(memory_gib * 1024),
            # Schedulable GPUs: time-slicing replicas and MIG instances each count as one.
            gpus=gpus,
            min_workers=settings.min_workers,
            max_workers=group.count if settings.max_workers is None else settings.max_workers,
            start=start,
            preference=settings.preference
            if settings.preference is not None
            else (GPU_PREFERENCE if gpu else CPU_PREFERENCE),
        )
    for name, gateway in sorted((offload.gateways if offload else {}).items()):
        settings = condor.groups.get(name) or WorkerGroupConfig()
        start = offload_start(gateway)
        found[name] = WorkerGroup(
            name=name,
            node_group=None,
            pod_cpus=float(gateway.worker.cpus),
            pod_memory_mib=gateway.worker.memory_gib * 1024,
            gpus=gateway.worker.gpus,
            min_workers=settings.min_workers,
            max_workers=gateway.max_workers if settings.max_workers is None else settings.max_workers,
            start=start if settings.start is None else f"({start}) && ({settings.start})",
            preference=OFFLOAD_PREFERENCE if settings.preference is None else settings.preference,
            gateway=gateway,
        )
    return found


def _default_gpu_start(reserve: GpuReserve | None, cpus: float | None, memory_gib: float | None, gpus: int) -> str:
    """A GPU group's START with its reserve per unclaimed GPU: the one configured, else the
    slot's share per GPU (whole cores, memory less the daemons'); only jobs that request GPUs
    when the slot's size is unknown (mode existing without sizes, which the checks refuse)."""
    if reserve is not None:
        return gpu_start(reserve.cpus, math.floor(reserve.memory_gib * 1024))
    if cpus is None or memory_gib is None or not gpus:
        return GPU_START
    slot_cpus = max(1, math.floor(cpus))
    slot_memory = math.floor(memory_gib * 1024) - DAEMON_MEMORY_MIB
    return gpu_start(slot_cpus / gpus, math.floor(slot_memory / gpus))


def offload_start(gateway: Gateway) -> str:
    """START of a gateway's workers: only jobs that opted in, submitted with a token of an
    allowed group, whose declared wall time (if any) ends before the Slurm job's; on GPU
    workers, only jobs asking for GPUs."""
    groups = " || ".join(f'stringListMember("{g}", TARGET.AuthTokenGroups, ",")' for g in gateway.groups)
    wall = gateway.limits.wall_time_minutes - RETIRE_MARGIN_MINUTES
    start = (
        f"(TARGET.{WANT_OFFLOAD} =?= True) && ({groups}) && "
        f"(TARGET.MaxWallTimeMins =?= undefined || TARGET.MaxWallTimeMins <= {wall})"
    )
    # As on local GPU groups, GPU workers are kept for jobs that ask for GPUs.
    return f"{start} && ({GPU_START})" if gateway.worker.gpus else start


class Trigger(StrictModel):
    """An operator's rule for the autoscaler: idle jobs matching `constraint` go to `group`
    before any other group they could run in."""

    constraint: str
    """ClassAd expression over the job ad, e.g. `RequestGpus > 0 && AcctGroup == "cms.ml"`."""
    group: DnsLabel
    """A worker group (the name of a batch node group)."""

    @field_validator("constraint")
    @classmethod
    def _constraint(cls, value: str) -> str:
        return classad_expression(value)


class Autoscaler(StrictModel):
    """The queue-driven autoscaler of the worker groups (`autoscaler/` in this repository)."""

    enabled: StrictBool = True
    """Deploy the autoscaler with the pool (it is deployed only where `af:condor.enabled`); `false`
    keeps every worker group at its `minWorkers`."""
    image: PinnedImage | None = None
    """An image of your own for the controller (`make autoscaler-image IMAGE=…` builds one from
    `autoscaler/Dockerfile`). Unset: it runs from the pool's central-manager image, which has
    Python and HTCondor's bindings, with its code (`autoscaler/`) from a ConfigMap."""
    interval_seconds: PositiveInt = 10
    """Seconds between planning cycles."""
    scale_down_delay_seconds: NonNegativeInt = 300
    """How long a worker must have been unclaimed, and its group in surplus, before it is
    removed while work keeps coming; then only those beyond what the group's load needed at its
    peak of the last delay (at least 10 minutes) go. A group whose load has not grown for 10 minutes is draining: its
    idle workers go at once. Shorter delays idle fewer cores and flap more (the simulator in
    `benchmarks/` prints both); 0 removes idle workers as soon as the load falls."""
    triggers: list[Trigger] = Field(default_factory=list)
    """Rules sending matching idle jobs to a group first."""
    metrics_port: int = Field(default=9100, ge=1024, le=65535)
    """Port of the Prometheus metrics endpoint."""
