"""Config of the autoscaler and offload layers. Each layer's issue extends its model;
what is here is already validated so stacks can declare it today."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl

from .base import DnsLabel, StrictModel


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
