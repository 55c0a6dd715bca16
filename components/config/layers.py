"""Config of the platform layers above the cluster. Each layer's issue extends its model;
what is here is already validated so stacks can declare it today."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, HttpUrl, NonNegativeInt, PositiveInt, SecretStr, field_validator

from .base import DnsLabel, StrictModel

_SIZE = re.compile(r"^(\d+)([kmgt])$")
_SIZE_FACTORS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size_bytes(text: str) -> int:
    """XRootD-style size (`512m`, `4g`) in bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError("a size such as 64k, 512m or 4g")
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]


class Roles(StrictModel):
    """Which IAM groups may do what; declared once, read by the hub, HTCondor and the cache."""

    login: list[str] = Field(default_factory=list)
    """Groups whose members may log in to the hub."""
    admin: list[str] = Field(default_factory=list)
    """Groups whose members administer the hub."""
    gpu: list[str] = Field(default_factory=list)
    """Groups entitled to GPU notebook profiles and GPU batch slots."""
    batch: list[str] = Field(default_factory=list)
    """Groups that may submit to the HTCondor pool."""
    cache: list[str] = Field(default_factory=list)
    """Groups that may read through the XCache."""


class Identity(StrictModel):
    """The OIDC provider (INDIGO-IAM) users and services authenticate with."""

    issuer: HttpUrl
    """Issuer URL of the IAM instance, for example `https://iam.cloud.infn.it/`."""
    client_id: str = Field(min_length=1)
    """OIDC client id registered for this facility."""
    client_secret: SecretStr | None = None
    """OIDC client secret; a Pulumi secret."""
    scopes: list[str] = Field(
        default_factory=lambda: [
            "openid",
            "profile",
            "email",
            "offline_access",
            "wlcg",
            "wlcg.groups",
        ]
    )
    """Scopes requested at login."""
    groups_claim: str = "wlcg.groups"
    """Token claim that lists the user's groups."""
    roles: Roles = Field(default_factory=Roles)
    """Group-to-role mapping."""


class Hub(StrictModel):
    """JupyterHub, the single entry point for physicists."""

    enabled: bool = True
    """Deploy the hub."""
    chart_version: str = Field(default="4.2.0", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned zero-to-jupyterhub chart version."""
    notebook_image: str = Field(
        default="quay.io/jupyter/scipy-notebook:2025-03-17", pattern=r"^[^:@\s]+(:[^:\s]+|@sha256:[0-9a-f]{64})$"
    )
    """Default single-user image, pinned by tag or digest."""
    idle_cull_minutes: PositiveInt = 120
    """Stop notebook servers idle for this long."""
    home_gib: PositiveInt = 10
    """Persistent home volume per user, in GiB."""

    @field_validator("notebook_image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if value.endswith(":latest"):
            raise ValueError("an image pinned to a version tag or digest, never `latest`")
        return value


class Cvmfs(StrictModel):
    """CVMFS repositories mounted read-only for experiment software."""

    enabled: bool = True
    """Deploy the CVMFS CSI driver."""
    repositories: list[str] = Field(default_factory=lambda: ["grid.cern.ch"])
    """Repositories to mount, for example `cms.cern.ch`."""
    squid_proxy: bool = False
    """Run a local squid in front of the Stratum-1s."""

    @field_validator("repositories")
    @classmethod
    def _repo_names(cls, value: list[str]) -> list[str]:
        for repo in value:
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", repo):
                raise ValueError(f"repository names such as cms.cern.ch (not {repo!r})")
        return value


class Cache(StrictModel):
    """XCache in front of the experiment's data federation."""

    enabled: bool = False
    """Deploy the cache."""
    origin: str = Field(default="cms-xrd-global.cern.ch:1094", pattern=r"^[a-z0-9.-]+(:\d{1,5})?$")
    """Redirector or origin the cache reads from (host[:port])."""
    servers: PositiveInt = 1
    """Number of cache servers."""
    disk_gib: PositiveInt = 500
    """Cache disk per server, in GiB."""
    ram: str = "4g"
    """Memory for blocks in flight (`pfc.ram`); XRootD 5.5 requires at least 1g."""
    block_size: str = "1m"
    """Block size (`pfc.blocksize`); a multiple of 4k."""

    @field_validator("ram")
    @classmethod
    def _ram(cls, value: str) -> str:
        if size_bytes(value) < size_bytes("1g"):
            raise ValueError("at least 1g (XRootD 5.5 refuses a smaller pfc.ram)")
        return value

    @field_validator("block_size")
    @classmethod
    def _block(cls, value: str) -> str:
        if size_bytes(value) % size_bytes("4k"):
            raise ValueError("a multiple of 4k, such as 64k or 1m")
        return value


class Condor(StrictModel):
    """The HTCondor pool on Kubernetes."""

    enabled: bool = False
    """Deploy the pool."""
    image_tag: str = Field(default="24.0.7-el9", pattern=r"^\d+\.\d+\.\d+-el\d+$")
    """Tag of the official htcondor/* images."""
    idle_shutdown_minutes: PositiveInt = 20
    """Minutes an unclaimed worker waits before it exits."""


class Autoscaler(StrictModel):
    """The queue-driven autoscaler of worker groups."""

    enabled: bool = False
    """Deploy the autoscaler."""
    interval_seconds: PositiveInt = 30
    """Seconds between planning cycles."""
    scale_down_delay_seconds: NonNegativeInt = 600
    """How long capacity must be unneeded before it is removed."""


class Gateway(StrictModel):
    """An HPC centre reached through interLink."""

    kind: Literal["interlink-slurm"] = "interlink-slurm"
    """Gateway kind."""
    endpoint: HttpUrl
    """interLink API at the HPC edge."""
    groups: list[str] = Field(default_factory=list)
    """IAM groups allowed to offload there."""


class Offload(StrictModel):
    """Gateways that offload work to HPC centres."""

    gateways: dict[DnsLabel, Gateway] = Field(default_factory=dict)
    """Gateways by name."""
