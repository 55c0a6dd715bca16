"""Config of the data, batch and offload layers. Each layer's issue extends its model;
what is here is already validated so stacks can declare it today."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, HttpUrl, NonNegativeInt, PositiveInt, field_validator

from .base import DnsLabel, StrictModel

_SIZE = re.compile(r"^(\d+)([kmgt])$")
_SIZE_FACTORS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size_bytes(text: str) -> int:
    """XRootD-style size (`512m`, `4g`) in bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError("a size such as 64k, 512m or 4g")
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]


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
