"""Config of the CVMFS layer (`af:cvmfs`): the repositories notebooks and workers mount, and how
clients reach the Stratum-1s."""

from __future__ import annotations

import re

from pydantic import Field, PositiveInt, StrictBool, field_validator

from ..config.base import StrictModel

_REPO = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")


class Cvmfs(StrictModel):
    """CVMFS repositories mounted read-only at /cvmfs in notebooks (and batch workers)."""

    enabled: StrictBool = True
    """Deploy the CVMFS CSI driver."""
    chart_version: str = Field(default="2.3.2", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned cvmfs-csi chart version."""
    repositories: list[str] = Field(default_factory=lambda: ["grid.cern.ch"], min_length=1)
    """Repositories users need, for example `cms.cern.ch`; the experiment profile sets them."""
    http_proxy: str | None = Field(default=None, pattern=r"^http://[a-z0-9.-]+:\d{1,5}(;http://[a-z0-9.-]+:\d{1,5})*$")
    """The site's squid(s) in front of the Stratum-1s, e.g. `http://squid.example.org:3128`."""
    squid_proxy: StrictBool = False
    """Run a local squid in the cluster instead; clients use it, then the site's proxy or DIRECT."""
    cache_gib: PositiveInt = 20
    """Local CVMFS client cache per node, in GiB."""

    @field_validator("repositories")
    @classmethod
    def _repo_names(cls, value: list[str]) -> list[str]:
        for repo in value:
            if not _REPO.fullmatch(repo):
                raise ValueError(f"repository names such as cms.cern.ch (not {repo!r})")
        if len(set(value)) != len(value):
            raise ValueError("each repository once")
        return value
