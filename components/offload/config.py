"""`af:offload`: HPC centres reached through interLink. Each gateway becomes a virtual node in
the cluster (the interLink virtual kubelet, which turns pods into Slurm jobs at the centre) and
an HTCondor worker group on that node, tried after the local groups: jobs that opt in
(`+WantOffload = True`) overflow there when local capacity is full."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt, SecretStr

from ..config.base import (
    HTTPS_URL_PATTERN,
    SLURM_FLAG_PATTERN,
    SLURM_NAME_PATTERN,
    DnsLabel,
    PinnedImage,
    RestrictedCidr,
    StrictModel,
)
from ..config.identity import GroupName
from ..credential.config import IamClient

OFFLOAD_PREFERENCE = 100
"""Default preference of offload groups: after every local group."""

GATEWAY_SECRETS = {"iam-client": "clientSecret", "token": "token"}
"""Each gateway's credential, by auth kind: the key of its secret."""

SlurmName = Annotated[str, Field(pattern=SLURM_NAME_PATTERN)]


class IamClientAuth(IamClient):
    """The facility authenticates to the interLink API with its own IAM client
    (client-credentials grant); the edge checks the token's issuer and audience."""

    kind: Literal["iam-client"]
    """Authentication kind."""
    scopes: list[str] = Field(default_factory=lambda: ["openid"], min_length=1)
    """Scopes asked for."""


class StaticTokenAuth(StrictModel):
    """The facility presents a long-lived token the HPC centre issued."""

    kind: Literal["token"]
    """Authentication kind."""
    token: SecretStr | None = None
    """The token: a Pulumi secret, `pulumi config set --secret --path
    'af:offload.gateways.<name>.auth.token' …`."""


class VirtualNodeResources(StrictModel):
    """What the virtual node advertises to Kubernetes: the share of the centre the facility may use."""

    cpus: PositiveInt
    """Cores."""
    memory_gib: PositiveInt
    """Memory, in GiB."""
    gpus: int = Field(default=0, ge=0)
    """GPUs (`nvidia.com/gpu`)."""
    gpu_model: DnsLabel | None = None
    """GPU model (for example `a100`), required when `gpus` > 0."""
    pods: PositiveInt = 100
    """Pods the node accepts at once."""


class WorkerSize(StrictModel):
    """One offloaded HTCondor worker: one Slurm job of this size."""

    cpus: PositiveInt = 8
    """Cores of each worker (its Slurm job's CPUs)."""
    memory_gib: int = Field(default=16, ge=2)
    """Memory of each worker, in GiB (1 GiB of it goes to HTCondor's own daemons)."""
    gpus: int = Field(default=0, ge=0)
    """GPUs of each worker; GPU jobs go only to gateways whose workers have GPUs."""


class Slurm(StrictModel):
    """Where the jobs go at the centre."""

    partition: SlurmName
    """Slurm partition."""
    account: SlurmName
    """Slurm account charged."""
    qos: SlurmName | None = None
    """Slurm QoS; the account's default when unset."""
    flags: list[Annotated[str, Field(pattern=SLURM_FLAG_PATTERN)]] = Field(default_factory=list)
    """Extra `sbatch` flags, for example `--constraint=gpu` (long form, no spaces)."""


class Limits(StrictModel):
    """How much the facility may use the gateway."""

    max_jobs: PositiveInt = 20
    """Offloaded workers (Slurm jobs) at once."""
    wall_time_minutes: int = Field(default=1440, ge=10, le=43200)
    """Wall time of each Slurm job. The worker stops taking jobs that declare a longer
    `MaxWallTimeMins`, and retires running ones before the limit."""


class Gateway(StrictModel):
    """An HPC centre reached through interLink: its edge runs the interLink API and Slurm plugin."""

    kind: Literal["interlink-slurm"] = "interlink-slurm"
    """Gateway kind."""
    endpoint: str = Field(pattern=HTTPS_URL_PATTERN)
    """The interLink API at the HPC edge (HTTPS)."""
    auth: IamClientAuth | StaticTokenAuth = Field(discriminator="kind")
    """How the facility authenticates to the interLink API."""
    resources: VirtualNodeResources
    """What the virtual node advertises."""
    worker: WorkerSize = Field(default_factory=WorkerSize)
    """Size of each offloaded worker."""
    slurm: Slurm
    """Partition, account, QoS and flags of the Slurm jobs."""
    runtime: Literal["apptainer", "singularity"] = "apptainer"
    """Container runtime at the centre."""
    limits: Limits = Field(default_factory=Limits)
    """Jobs and wall time."""
    groups: list[GroupName] = Field(min_length=1)
    """IAM groups whose jobs may run there (from the token they submitted with); each must be
    declared in `af:identity.roles`."""
    source_cidrs: list[RestrictedCidr] = Field(min_length=1)
    """Networks the centre's compute nodes reach the facility from: only they may connect to
    the pool's public ports."""

    def slurm_flags(self) -> str:
        """The `sbatch` flags of each offloaded worker: where, who pays, and how long."""
        slurm = self.slurm
        hours, minutes = divmod(self.limits.wall_time_minutes, 60)
        flags = [f"--partition={slurm.partition}", f"--account={slurm.account}"]
        if slurm.qos:
            flags.append(f"--qos={slurm.qos}")
        flags.append(f"--time={hours:02d}:{minutes:02d}:00")
        return " ".join([*flags, *slurm.flags])

    @property
    def max_workers(self) -> int:
        """Workers that fit at once: the job limit, the node's pods and its resources."""
        r, w = self.resources, self.worker
        fits = [self.limits.max_jobs, r.pods, r.cpus // w.cpus, r.memory_gib // w.memory_gib]
        if w.gpus:
            fits.append(r.gpus // w.gpus)
        return min(fits)


class Offload(StrictModel):
    """Gateways that offload work to HPC centres."""

    gateways: dict[DnsLabel, Gateway] = Field(default_factory=dict)
    """Gateways by name; each name is also its HTCondor worker group's."""
    virtual_kubelet_image: PinnedImage = "ghcr.io/interlink-hq/interlink/virtual-kubelet-inttw:0.6.0"
    """The interLink virtual kubelet image (pinned)."""
    token_image: PinnedImage = "docker.io/library/python:3.12.8-alpine3.21"
    """Image of the sidecar that keeps the IAM token fresh (runs a standard-library script)."""
